"""Claiming due work from an outbox table with a lease.

A claim sets ``lease_until``; a worker that dies simply lets its lease run out and another
worker takes the row again. PostgreSQL uses ``FOR UPDATE SKIP LOCKED`` so workers never wait
on, or take, each other's rows; SQLite has one writer at a time, so the plain update is atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa


def claim(
    conn: sa.Connection,
    table: sa.Table,
    *,
    due_column: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> list[dict[str, Any]]:
    due = table.c[due_column]
    query = (
        sa.select(table.c.id)
        .where(
            due.is_not(None),
            due <= now,
            sa.or_(table.c.lease_until.is_(None), table.c.lease_until <= now),
            *where,
        )
        .order_by(due)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(conn.execute(query).scalars())
    if not ids:
        return []
    conn.execute(sa.update(table).where(table.c.id.in_(ids)).values(lease_until=now + lease))
    rows = conn.execute(sa.select(table).where(table.c.id.in_(ids)).order_by(due)).mappings()
    return [dict(r) for r in rows]
