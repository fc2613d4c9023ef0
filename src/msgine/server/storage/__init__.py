"""Storage: the schema, migrations, engines, group-committed writes and outbox claims."""

from msgine.server.storage._database import Database, current_revision
from msgine.server.storage._tables import (
    carrier_throttle,
    console_sessions,
    console_users,
    metadata,
)

__all__ = [
    "Database",
    "carrier_throttle",
    "console_sessions",
    "console_users",
    "current_revision",
    "metadata",
]
