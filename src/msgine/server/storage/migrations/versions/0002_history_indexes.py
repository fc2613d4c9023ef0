"""indexes that keep periodic work independent of history

Retention reads only rows it has yet to purge (partial indexes on ``purged_at IS NULL``), finds
the deliveries still open without reading every delivery, and erasure and retention remove
stored idempotent responses by message id without scanning every key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 01:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

UNPURGED = sa.text("purged_at IS NULL")
OPEN = sa.text("completed_at IS NULL")
PARTIAL = (
    ("ix_messages_unpurged", "messages", ["account_id", "created_at"], UNPURGED),
    ("ix_inbound_unpurged", "inbound_messages", ["account_id", "received_at"], UNPURGED),
    ("ix_events_unpurged", "events", ["account_id", "created_at"], UNPURGED),
    ("ix_webhook_deliveries_open", "webhook_deliveries", ["account_id"], OPEN),
)


def upgrade() -> None:
    for name, table, columns, where in PARTIAL:
        op.create_index(name, table, columns, sqlite_where=where, postgresql_where=where)
    op.create_index(
        "ix_idempotency_keys_message_id", "idempotency_keys", ["message_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_message_id", table_name="idempotency_keys")
    for name, table, _columns, _where in reversed(PARTIAL):
        op.drop_index(name, table_name=table)
