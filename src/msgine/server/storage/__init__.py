"""Storage: the schema, migrations, engines, group-committed writes and outbox claims."""

from msgine.server.storage._database import Database, current_revision
from msgine.server.storage._direct import Direct
from msgine.server.storage._tables import (
    carrier_throttle,
    console_sessions,
    console_users,
    daily_message_counts,
    metadata,
)

__all__ = [
    "Database",
    "Direct",
    "carrier_throttle",
    "console_sessions",
    "console_users",
    "current_revision",
    "daily_message_counts",
    "metadata",
]
