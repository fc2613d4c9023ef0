"""Alembic environment: always handed a connection by ``Database.migrate``."""

from alembic import context

from msgine.server.storage._tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
context.run_migrations()
