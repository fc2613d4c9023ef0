"""Claiming due work from an outbox table with a lease.

A claim sets ``lease_until``; a worker that dies simply lets its lease run out and another
worker takes the row again. A claim is one statement, ``UPDATE ... WHERE id IN (SELECT ... LIMIT
n) RETURNING``. On PostgreSQL the inner select locks its rows ``FOR UPDATE SKIP LOCKED``, so
workers never wait on, or take, each other's rows (a row another worker claimed and committed
meanwhile is re-checked under the lock and is no longer due); SQLite has one writer at a time,
so the statement is atomic there as it is.

A claim walks the due column's index in order and stops after ``limit`` rows, so it costs the
same with ten jobs waiting or a million. Its other filters only filter: left to itself SQLite
drives the claim by whatever index an equality filter matches (the jobs' ``(kind, ref)`` key,
the deliveries' endpoint index), reads every row of that kind or endpoint and sorts them, which
made each claim proportional to the whole backlog (``bench/history_scaling.py`` on SQLite:
6.9 ms at 10,000 waiting jobs and 62 ms at 100,000; about 1 ms walking the due index).

A claim also records its owner (``locked_by``: the process, see ``msgine.server._process``).
A process that starts after a crash calls ``take_back``: the claims of owners that are provably
gone (on this machine, their process no longer running) are released at once, instead of
waiting out their lease. Claims of live processes, and of processes on other machines, are
never touched: those still wait for their lease.

Work on claimed rows is done in batches; ``each`` runs a batch's reads or writes together and,
when that fails, one by one, so one bad row does not hold up the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from msgine.server._process import is_gone, this_process
from msgine.server.logging import get_logger
from msgine.server.storage._database import Database
from msgine.server.storage._direct import Direct

log = get_logger("msgine.storage")

T = TypeVar("T")
Item = TypeVar("Item")


class Claim:
    """The claim statement of one outbox table and filter: built once, run for every batch.

    It is a direct statement, so ``where`` takes no ``IN`` lists (``in_`` of a subquery is fine).
    The ``where`` filters never choose the access path (see the module's docstring).
    """

    __slots__ = ("_due", "_holders", "_release", "_statement", "table")

    def __init__(
        self, table: sa.Table, *, due_column: str, where: Sequence[sa.ColumnElement[bool]] = ()
    ) -> None:
        self.table = table.name
        due = table.c[due_column]
        now = sa.bindparam("now", type_=due.type)
        due_ids = (
            sa.select(table.c.id)
            .where(
                due.is_not(None),
                due <= now,
                sa.or_(table.c.lease_until.is_(None), table.c.lease_until <= now),
                *(_FilterOnly(condition) for condition in where),
            )
            .order_by(due)
            .limit(sa.bindparam("limit", type_=sa.Integer))
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite compiles it to nothing
        )
        self._due = due.key
        self._statement = Direct(
            sa.update(table)
            .where(table.c.id.in_(due_ids))
            .values(
                lease_until=sa.bindparam("lease", type_=table.c.lease_until.type),
                locked_by=sa.bindparam("owner", type_=table.c.locked_by.type),
            )
            .returning(*table.c)
        )
        leased = sa.and_(due.is_not(None), table.c.lease_until > now)
        self._holders = sa.select(table.c.locked_by).where(leased).distinct()
        self._release = (
            sa.update(table)
            .where(leased, table.c.locked_by == sa.bindparam("holder"))
            .values(lease_until=None, locked_by=None)
        )

    @property
    def statement(self) -> sa.Update:
        """The claim's SQL statement (for query plans)."""
        return self._statement.statement  # type: ignore[return-value]

    def __call__(
        self, conn: sa.Connection, *, now: datetime, lease: timedelta, limit: int
    ) -> list[dict[str, Any]]:
        """Lease up to ``limit`` due rows and return them, with their new lease, oldest first."""
        values = {"now": now, "lease": now + lease, "limit": limit, "owner": this_process()}
        rows = self._statement.all(conn, values)
        rows.sort(key=lambda row: (row[self._due], row["id"]))
        return rows

    def holders(self, conn: sa.Connection, now: datetime) -> list[str]:
        """The owners of the claims whose lease still runs."""
        return [h for h in conn.execute(self._holders, {"now": now}).scalars() if h]

    def release(self, conn: sa.Connection, holders: Sequence[str], now: datetime) -> int:
        """Make the leased rows of ``holders`` due again now; how many were released."""
        return sum(
            conn.execute(self._release, {"now": now, "holder": holder}).rowcount
            for holder in holders
        )


async def take_back(db: Database, claim: Claim, now: datetime) -> int:
    """Release the claims whose owners are provably gone (see the module's docstring); how
    many rows were released. A failure is logged and left to the leases."""
    try:
        holders = await db.aread(lambda conn: claim.holders(conn, now))
        gone = [holder for holder in holders if is_gone(holder)]
        released = await db.awrite(lambda conn: claim.release(conn, gone, now)) if gone else 0
    except Exception as exc:
        log.error("claims_take_back_failed", error_type=type(exc).__name__)
        return 0
    if released:
        log.info("claims_taken_back", table=claim.table, owners=len(gone), rows=released)
    return released


class _FilterOnly(sa.ColumnElement[bool]):
    """A condition the query planner must not use to pick an index, only to filter rows.

    SQLite's documented way is a unary ``+`` in front of the term; other databases (PostgreSQL)
    plan by cost with statistics and get the condition unchanged.
    """

    inherit_cache = True
    # The condition is part of the statement's cache key, like any other clause.
    _traverse_internals = [("condition", InternalTraversal.dp_clauseelement)]

    def __init__(self, condition: sa.ColumnElement[bool]) -> None:
        self.condition = condition


@compiles(_FilterOnly)
def _filter_only(element: _FilterOnly, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.condition, **kw)})"


@compiles(_FilterOnly, "sqlite")
def _filter_only_sqlite(element: _FilterOnly, compiler: SQLCompiler, **kw: Any) -> str:
    return f"+({compiler.process(element.condition, **kw)})"


async def each(
    run: Callable[[Callable[[sa.Connection], list[T]]], Awaitable[list[T]]],
    fn: Callable[[sa.Connection, Sequence[Item]], list[T]],
    items: Sequence[Item],
) -> list[T | Exception]:
    """``fn`` over all ``items`` in one ``run`` (a read or a write), one result per item; if that
    fails, over each item in a run of its own, so only a bad item gets an exception (and a
    batch of outbox work is not held up by one bad row)."""
    if not items:
        return []
    try:
        return list(await run(lambda conn: fn(conn, items)))
    except Exception as exc:
        if len(items) == 1:
            return [exc]
    alone = await asyncio.gather(
        *(run(partial(_one, fn, item)) for item in items), return_exceptions=True
    )
    results: list[T | Exception] = []
    for result in alone:
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            results.append(result)
        else:
            results.append(result[0])
    return results


def _one(
    fn: Callable[[sa.Connection, Sequence[Item]], list[T]], item: Item, conn: sa.Connection
) -> list[T]:
    return fn(conn, [item])
