"""The suppression list: numbers an account must not message (opt-outs).

A row is keyed by the account, the mode and the number's blind index, which is all the send
path needs: test traffic (the simulator) has a list of its own and never changes the live one.
The number itself is kept encrypted only so the list can be shown to the account; erasure
removes it and keeps the index, so an erased person who opted out is still never messaged
again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from msgine.server.audit import Actor, record
from msgine.server.crypto import Vault
from msgine.server.errors import NotFound
from msgine.server.events import iso
from msgine.server.storage import suppressions

OPT_OUT = "opt_out"


def _row_id(account_id: str, phone_index: str, mode: str = "live") -> str:
    """The row's name in its values' encryption (live rows keep the name they always had)."""
    if mode == "live":
        return f"{account_id}/{phone_index}"
    return f"{account_id}/{mode}/{phone_index}"


def suppress(
    conn: sa.Connection,
    vault: Vault,
    *,
    account_id: str,
    mode: str,
    phone: str,
    phone_index: str,
    reason: str,
    source: str,
    now: datetime,
) -> bool:
    """Add a number; False when it was already on the list (the first entry is kept)."""
    row_id = _row_id(account_id, phone_index, mode)
    values = {
        "account_id": account_id,
        "mode": mode,
        "phone_index": phone_index,
        "phone": vault.encrypt_str(phone, table="suppressions", column="phone", row_id=row_id),
        "reason": reason,
        "source": source,
        "created_at": now,
    }
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(suppressions).values(**values).on_conflict_do_nothing()
    # rowcount of an INSERT is not reliable across drivers; RETURNING says what was added.
    added = conn.execute(statement.returning(suppressions.c.phone_index)).first()
    return added is not None


def lift(conn: sa.Connection, account_id: str, mode: str, phone_index: str) -> bool:
    """Remove a number from the list of ``mode``; False when it was not on it."""
    result = conn.execute(
        sa.delete(suppressions).where(
            suppressions.c.account_id == account_id,
            suppressions.c.mode == mode,
            suppressions.c.phone_index == phone_index,
        )
    )
    return bool(result.rowcount)


def remove(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    *,
    account_id: str,
    mode: str,
    phone_index: str,
    now: datetime,
) -> None:
    """Take a number off the list on a person's request (the API, the console), audited;
    NotFound if it is not on it."""
    if not lift(conn, account_id, mode, phone_index):
        raise NotFound("This number is not on the suppression list.")
    record(
        conn,
        vault,
        actor,
        "suppression.removed",
        now=now,
        account_id=account_id,
        details={"mode": mode},
    )


def forget_number(
    conn: sa.Connection, account_id: str, phone_index: str, modes: Sequence[str]
) -> bool:
    """Erasure: drop the stored number, keep the keyed index (and so the block)."""
    result = conn.execute(
        sa.update(suppressions)
        .where(
            suppressions.c.account_id == account_id,
            suppressions.c.mode.in_(list(modes)),
            suppressions.c.phone_index == phone_index,
        )
        .values(phone=None)
    )
    return bool(result.rowcount)


def view(vault: Vault, row: Any) -> dict[str, Any]:
    phone = None
    if row["phone"] is not None:
        phone = vault.decrypt_str(
            row["phone"],
            table="suppressions",
            column="phone",
            row_id=_row_id(row["account_id"], row["phone_index"], row["mode"]),
        )
    return {
        "phone": phone,
        "erased": phone is None,
        "reason": row["reason"],
        "source": row["source"],
        "createdAt": iso(row["created_at"]),
    }


def find(
    conn: sa.Connection, vault: Vault, account_id: str, mode: str, phone_index: str
) -> dict[str, Any] | None:
    row = (
        conn.execute(
            sa.select(suppressions).where(
                suppressions.c.account_id == account_id,
                suppressions.c.mode == mode,
                suppressions.c.phone_index == phone_index,
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else view(vault, row)


def newest(
    conn: sa.Connection, account_id: str, mode: str, *, limit: int, offset: int = 0
) -> tuple[list[Any], int]:
    """The rows of the account's list of ``mode``, newest first, and how many there are."""
    where = (suppressions.c.account_id == account_id, suppressions.c.mode == mode)
    total = conn.execute(
        sa.select(sa.func.count()).select_from(suppressions).where(*where)
    ).scalar_one()
    rows = conn.execute(
        sa.select(suppressions)
        .where(*where)
        .order_by(suppressions.c.created_at.desc(), suppressions.c.phone_index)
        .limit(limit)
        .offset(offset)
    ).mappings()
    return list(rows), int(total)


def list_page(
    conn: sa.Connection, vault: Vault, account_id: str, mode: str, *, page: int, limit: int
) -> dict[str, Any]:
    """The account's list of ``mode``, newest first. Erased entries show no number."""
    rows, total = newest(conn, account_id, mode, limit=limit, offset=(page - 1) * limit)
    return {
        "suppressions": [view(vault, r) for r in rows],
        "total": total,
        "page": page,
        "limit": limit,
        "pages": (total + limit - 1) // limit if total else 0,
    }
