"""account names are unique

``--account NAME`` on the command line picks an account by name, so two accounts with one name
made the choice silent and arbitrary. Existing duplicates are kept, not merged or dropped: the
oldest account keeps the name, each younger one is renamed to ``NAME (ACCOUNT_ID)`` (ids are
unique, so the new names are too), and ``msgine accounts list`` shows the result.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
# The chain is relinked when the revisions between are merged.
down_revision: str | None = "0004"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

accounts = sa.table(
    "accounts", sa.column("id", sa.String), sa.column("name", sa.String), sa.column("created_at")
)


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(accounts.c.id, accounts.c.name).order_by(accounts.c.created_at, accounts.c.id)
    ).all()
    seen: set[str] = set()
    for account_id, name in rows:
        if name in seen:
            renamed = f"{name[: 200 - len(account_id) - 3]} ({account_id})"
            conn.execute(
                sa.update(accounts).where(accounts.c.id == account_id).values(name=renamed)
            )
        seen.add(name)
    op.create_index("uq_accounts_name", "accounts", ["name"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_accounts_name", table_name="accounts")
