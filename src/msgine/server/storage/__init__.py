"""Storage: the schema, migrations, engines, group-committed writes and outbox claims."""

from msgine.server.storage._database import Database, current_revision
from msgine.server.storage._tables import metadata

__all__ = ["Database", "current_revision", "metadata"]
