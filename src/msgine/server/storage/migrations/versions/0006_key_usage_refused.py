"""refused requests of revoked keys in key usage

A revoked key that is still presented shows that someone still holds it: the compromise report
counts those requests per hour and address, next to the key's accepted ones.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 17:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
# The previous migration in the chain; relinked when the migrations in between are merged.
down_revision: str | None = "0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # Adding a column with a constant default rewrites no rows (SQLite and PostgreSQL).
    op.add_column(
        "key_usage",
        sa.Column("refused", sa.Integer, nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    with op.batch_alter_table("key_usage") as batch:
        batch.drop_column("refused")
