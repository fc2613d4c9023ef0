"""carriers and routes as operator configuration

Carriers (kind, options, encrypted credentials, crash policy), routes (prefix or country ->
ordered carriers, per-account override, price), the health workers publish for each carrier,
receipts that arrived before their submit's record, and on existing tables: the carrier of a
recipient (matched with the carrier's message id), of a status change and of an inbound message.

Revision ID: 0007
Revises: 0002 (relinked to the previous revision when merged)
Create Date: 2026-12-02 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

UNKNOWN = sa.text("status = 'unknown'")


def upgrade() -> None:
    op.create_table(
        "carriers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("credentials", sa.LargeBinary(), nullable=True),
        sa.Column("on_uncertain_submit", sa.String(length=16), nullable=False),
        sa.Column("retry_budget", sa.Integer(), nullable=False),
        sa.Column("inbound_account_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_carriers")),
        sa.UniqueConstraint("name", name=op.f("uq_carriers_name")),
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=True),
        sa.Column("prefix", sa.String(length=16), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("carriers", sa.JSON(), nullable=False),
        sa.Column("price_per_segment", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_routes_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
    )
    op.create_table(
        "carrier_health",
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("binds_up", sa.Integer(), nullable=False),
        sa.Column("binds_wanted", sa.Integer(), nullable=False),
        sa.Column("window_in_use", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("carrier", "worker", name=op.f("pk_carrier_health")),
    )
    op.create_table(
        "carrier_receipts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("carrier_message_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("carrier_state", sa.String(length=32), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_carrier_receipts")),
    )
    op.create_index(
        "ix_carrier_receipts_message", "carrier_receipts", ["carrier", "carrier_message_id"]
    )
    with op.batch_alter_table("recipients") as batch:
        batch.add_column(sa.Column("carrier", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_recipients_carrier_message", "recipients", ["carrier", "carrier_message_id"]
    )
    op.create_index(
        "ix_recipients_unknown",
        "recipients",
        ["carrier"],
        sqlite_where=UNKNOWN,
        postgresql_where=UNKNOWN,
    )
    with op.batch_alter_table("status_events") as batch:
        batch.add_column(sa.Column("carrier", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("detail", sa.String(length=200), nullable=True))
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("carrier", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_inbound_carrier_message", "inbound_messages", ["carrier", "carrier_message_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_carrier_message", table_name="inbound_messages")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("carrier")
    with op.batch_alter_table("status_events") as batch:
        batch.drop_column("detail")
        batch.drop_column("carrier")
    op.drop_index("ix_recipients_unknown", table_name="recipients")
    op.drop_index("ix_recipients_carrier_message", table_name="recipients")
    with op.batch_alter_table("recipients") as batch:
        batch.drop_column("carrier")
    op.drop_index("ix_carrier_receipts_message", table_name="carrier_receipts")
    for table in ("carrier_receipts", "carrier_health", "routes", "carriers"):
        op.drop_table(table)
