"""listen sessions registered, so events are stored only when something receives them

An event is now stored only for an audience: an endpoint, a callback URL or a running
``msgine webhooks listen`` session, which registers itself here with an expiry it renews.
No existing row changes: stored events and status history stay as they are (the timeline
reader shows rows written before this revision as before).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_listeners",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_webhook_listeners_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_listeners")),
    )


def downgrade() -> None:
    op.drop_table("webhook_listeners")
