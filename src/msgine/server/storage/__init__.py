"""Storage: the schema, migrations, engines, group-committed writes and outbox claims."""

from msgine.server.storage._database import Database, current_revision
from msgine.server.storage._tables import carrier_throttle, metadata

__all__ = ["Database", "carrier_throttle", "current_revision", "metadata"]
