"""carrier throughput schedules shared by worker processes

One row per carrier with a throughput cap: the time of its next free send slot, advanced
atomically by every worker process that sends through the carrier.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "carrier_throttle",
        sa.Column("carrier", sa.String(64), primary_key=True),
        sa.Column("tat", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("carrier_throttle")
