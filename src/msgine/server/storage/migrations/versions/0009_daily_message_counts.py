"""per-day message counters for the analytics routes, filled from existing messages

Counters per account, mode, channel, UTC day and currency (see msgine.server.analytics for
what each counts). Existing messages are counted once here, by the same rules the gateway
applies as messages change state: a recipient is "sent" when its first recorded status (at
acceptance) was not ``rejected``; of those, ``delivered`` ones count as delivered, and
``failed`` or later ``rejected`` ones as failed. A message counts on the UTC day it was due.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
# The previous migration in the chain; relinked when the migrations in between are merged.
down_revision: str | None = "0008"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

_COUNT = sa.BigInteger


def upgrade() -> None:
    op.create_table(
        "daily_message_counts",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(4), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("sent", _COUNT, nullable=False, server_default=sa.text("0")),
        sa.Column("delivered", _COUNT, nullable=False, server_default=sa.text("0")),
        sa.Column("failed", _COUNT, nullable=False, server_default=sa.text("0")),
        sa.Column("cost", _COUNT, nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint(
            "account_id", "mode", "channel", "day", "currency", name="pk_daily_message_counts"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_daily_message_counts_account_id_accounts",
        ),
    )
    op.execute(_BACKFILL)


# Stored times are UTC on both databases (naive timestamps on PostgreSQL, ISO text on SQLite),
# and date() gives their UTC day on both. Each recipient's first status event is the status it
# was accepted with.
_BACKFILL = sa.text(
    """
INSERT INTO daily_message_counts
    (account_id, mode, channel, day, currency, sent, delivered, failed, cost)
SELECT m.account_id, m.mode, 'sms', date(COALESCE(m.scheduled_for, m.created_at)), m.currency,
       SUM(r.sent), SUM(r.delivered), SUM(r.failed), SUM(m.cost)
FROM messages m
JOIN (
    SELECT rc.message_id,
           SUM(CASE WHEN rc.first_status <> 'rejected' THEN 1 ELSE 0 END) AS sent,
           SUM(CASE WHEN rc.first_status <> 'rejected' AND rc.status = 'delivered'
                    THEN 1 ELSE 0 END) AS delivered,
           SUM(CASE WHEN rc.first_status <> 'rejected' AND rc.status IN ('failed', 'rejected')
                    THEN 1 ELSE 0 END) AS failed
    FROM (
        SELECT rr.message_id, rr.status,
               COALESCE((SELECT se.status FROM status_events se
                         WHERE se.message_id = rr.message_id AND se.recipient_id = rr.id
                         ORDER BY se.id LIMIT 1), rr.status) AS first_status
        FROM recipients rr
    ) rc
    GROUP BY rc.message_id
) r ON r.message_id = m.id
GROUP BY m.account_id, m.mode, date(COALESCE(m.scheduled_for, m.created_at)), m.currency
HAVING SUM(r.sent) > 0
"""
)


def downgrade() -> None:
    op.drop_table("daily_message_counts")
