"""test and live: a mode on every object a key can see or change

Webhook endpoints, events, inbound messages, consents and suppressions get a ``mode`` column;
suppressions and idempotency keys have it in their primary key, so each mode has its own
opt-out list and its own idempotency keys. Existing rows take the mode of what made them where
it can be told:

- idempotency keys and events: their message's mode (events without one: live);
- webhook endpoints and consents: the mode of the key that created them, from the audit log
  (``webhook.endpoint_created`` / ``consent.granted``, actor = key id), else live;
- inbound messages: test (the simulator, test keys only, was the only way in);
- suppressions: test when made by an inbound keyword (``source = 'keyword'``: such inbound
  came only from the simulator), live otherwise.

Accounts get a second callback signing secret, for test messages' ``callbackUrl`` deliveries;
the existing one signs live ones.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

MODE = sa.String(4)
_BY_MESSAGE = "(SELECT m.mode FROM messages m WHERE m.id = {table}.message_id)"
_BY_CREATOR = (
    "(SELECT k.mode FROM audit_log a JOIN api_keys k ON k.id = a.actor"
    " WHERE a.action = '{action}' AND a.target = {table}.id ORDER BY a.seq LIMIT 1)"
)
BACKFILL = {
    "idempotency_keys": f"COALESCE({_BY_MESSAGE.format(table='idempotency_keys')}, 'live')",
    "events": f"COALESCE({_BY_MESSAGE.format(table='events')}, 'live')",
    "webhook_endpoints": "COALESCE({}, 'live')".format(
        _BY_CREATOR.format(action="webhook.endpoint_created", table="webhook_endpoints")
    ),
    "consents": "COALESCE({}, 'live')".format(
        _BY_CREATOR.format(action="consent.granted", table="consents")
    ),
    "inbound_messages": "'test'",
    "suppressions": "CASE WHEN source = 'keyword' THEN 'test' ELSE 'live' END",
}
NEW_KEYS = {
    "idempotency_keys": ["account_id", "mode", "key"],
    "suppressions": ["account_id", "mode", "phone_index"],
}


SECRET_COLUMNS = (
    ("test_signing_secret", sa.LargeBinary),
    ("test_signing_secret_prev", sa.LargeBinary),
    ("test_signing_secret_prev_expires_at", sa.DateTime),
)


def upgrade() -> None:
    for name, kind in SECRET_COLUMNS:  # the test world's callback signing secret
        op.add_column("accounts", sa.Column(name, kind))
    for table, value in BACKFILL.items():
        op.add_column(table, sa.Column("mode", MODE, nullable=True))
        op.execute(f"UPDATE {table} SET mode = {value}")  # noqa: S608 - constant text only
        with op.batch_alter_table(table) as batch:
            batch.alter_column("mode", existing_type=MODE, nullable=False)
            if table in NEW_KEYS:
                batch.drop_constraint(f"pk_{table}", type_="primary")
                batch.create_primary_key(f"pk_{table}", NEW_KEYS[table])


def downgrade() -> None:
    old_keys = {
        "idempotency_keys": ["account_id", "key"],
        "suppressions": ["account_id", "phone_index"],
    }
    for table in reversed(list(BACKFILL)):
        if table in old_keys:  # one row per old key survives: the live one where both exist
            op.execute(
                f"DELETE FROM {table} WHERE mode = 'test' AND EXISTS (SELECT 1 FROM {table} o"  # noqa: S608
                f" WHERE o.mode = 'live' AND "
                + " AND ".join(f"o.{c} = {table}.{c}" for c in old_keys[table])
                + ")"
            )
        with op.batch_alter_table(table) as batch:
            if table in old_keys:
                batch.drop_constraint(f"pk_{table}", type_="primary")
                batch.create_primary_key(f"pk_{table}", old_keys[table])
            batch.drop_column("mode")
    with op.batch_alter_table("accounts") as batch:
        for name, _kind in SECRET_COLUMNS:
            batch.drop_column(name)
