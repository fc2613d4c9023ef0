"""callbacks from HTTP upstream carriers

Each carrier's callback token, encrypted (the unguessable part of its callback URL), and the
replay keys of callback requests already taken, per carrier.

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0008"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("carriers", sa.Column("callback_token", sa.LargeBinary(), nullable=True))
    op.create_table(
        "carrier_callbacks",
        sa.Column("carrier", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("carrier", "key", name=op.f("pk_carrier_callbacks")),
    )
    op.create_index("ix_carrier_callbacks_received", "carrier_callbacks", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_carrier_callbacks_received", table_name="carrier_callbacks")
    op.drop_table("carrier_callbacks")
    with op.batch_alter_table("carriers") as batch:
        batch.drop_column("callback_token")
