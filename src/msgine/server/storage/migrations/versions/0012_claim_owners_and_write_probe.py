"""claim owners on webhook deliveries; the readiness write probe

A webhook delivery's claim records its owner (as a job's always could), so a restarted process
can release the claims of a process that is provably gone instead of waiting out their lease.
``write_probes`` holds one row per process, rewritten by ``/readyz`` to prove the database
still takes writes (a full disk or a read-only database fails it).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("locked_by", sa.String(length=64), nullable=True))
    op.create_table(
        "write_probes",
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_write_probes")),
    )


def downgrade() -> None:
    op.drop_table("write_probes")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("locked_by")
