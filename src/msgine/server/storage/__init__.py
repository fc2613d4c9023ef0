"""Storage: the schema, migrations, engines, group-committed writes and outbox claims."""

from msgine.server.storage._database import Database, current_revision
from msgine.server.storage._outbox import Claim, each, take_back
from msgine.server.storage._probe import WriteProbe
from msgine.server.storage._tables import carrier_throttle, metadata

__all__ = [
    "Claim",
    "Database",
    "WriteProbe",
    "carrier_throttle",
    "current_revision",
    "each",
    "metadata",
    "take_back",
]
