"""Group commit: one writer thread runs queued write functions in shared transactions.

SQLite allows one writer and each fsync costs about a millisecond, so committing per request caps
throughput. Requests queue their write function; the writer runs everything queued so far in one
transaction, commits once, then wakes every caller. Nothing is acknowledged before its commit.
Rows a write function defers (``Direct.defer``) are inserted together at the end of the batch.

The hand-off itself is on the send path of every message, so it is kept cheap: the writer keeps
one connection open (a pool checkout per batch cost more than a small batch's statements), and
it settles all of a batch's asyncio callers with one wake-up of their event loop, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from msgine.server.storage._direct import (
    discard_deferred,
    flush_deferred,
    start_deferring,
    stop_deferring,
)
from msgine.server.storage._engine import start_write

T = TypeVar("T")
WriteFn = Callable[[sa.Connection], Any]
#: Where a write's outcome goes: a concurrent future (threads) or an asyncio future (a loop).
Waiter = Future[Any] | asyncio.Future[Any]
Item = tuple[WriteFn, Waiter]
Outcome = tuple[Waiter, bool, Any]

_STOP = object()


class GroupCommitWriter:
    def __init__(self, engine: Engine, *, max_batch: int = 256, name: str = "msgine-writer"):
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._conn: sa.Connection | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[sa.Connection], T]) -> Future[T]:
        """Queue ``fn``; the future resolves after its transaction commits."""
        future: Future[T] = Future()
        self._put(fn, future)
        return future

    def submit_async(self, fn: Callable[[sa.Connection], T]) -> asyncio.Future[T]:
        """Queue ``fn`` from a coroutine; the asyncio future resolves after the commit.

        Cancelling the future does not withdraw the write: it may already be committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._put(fn, future)
        return future

    def _put(self, fn: WriteFn, waiter: Waiter) -> None:
        if threading.current_thread() is self._thread:
            raise RuntimeError("write() called from inside a write function")
        self._queue.put((fn, waiter))

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                batch = [item]
                while len(batch) < self._max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        self._commit(batch)
                        return
                    batch.append(nxt)
                self._commit(batch)
        finally:
            self._drop_connection()

    def _commit(self, batch: list[Item]) -> None:
        """Optimistically run the whole batch in one transaction without savepoints; if any
        function fails, roll it all back and run each function in its own savepoint, so the
        failure is handed to its caller alone. Write functions touch only the database, so
        running one again after a rollback is safe.

        Several processes batching writes to the same rows in different orders can deadlock
        on PostgreSQL; the database aborts one side, and that side simply runs again."""
        for _attempt in range(_TRANSIENT_RETRIES):
            outcomes, error = self._try_fast(batch)
            if error is None:
                _settle(outcomes)
                return
            if not is_transient(error):
                break
        _settle(self._commit_isolated(batch))

    def _try_fast(self, batch: list[Item]) -> tuple[list[Outcome], Exception | None]:
        try:
            with self._transaction() as conn:
                outcomes = [(waiter, True, fn(conn)) for fn, waiter in batch]
                flush_deferred(conn)
        except Exception as exc:
            return [], exc
        return outcomes, None

    def _commit_isolated(self, batch: list[Item]) -> list[Outcome]:
        try:
            with self._transaction() as conn:
                return [_call_in_savepoint(fn, conn, waiter) for fn, waiter in batch]
        except BaseException as exc:
            return [(waiter, False, exc) for _fn, waiter in batch]

    def _transaction(self) -> _Transaction:
        if self._conn is None:
            self._conn = self._engine.connect()
        return _Transaction(self, self._conn)

    def _drop_connection(self) -> None:
        """Forget the connection after a failed transaction; the next batch takes a fresh one
        (on PostgreSQL the pool's pre-ping replaces a connection the server closed)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to release
                conn.close()


class _Transaction:
    """One write transaction on the writer's connection (``start_write``), committed on
    success, rolled back on error."""

    def __init__(self, writer: GroupCommitWriter, conn: sa.Connection) -> None:
        self._writer = writer
        self._conn = conn

    def __enter__(self) -> sa.Connection:
        conn = self._conn
        start_write(conn)
        start_deferring(conn)
        return conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        stop_deferring(self._conn)
        if exc_type is None:
            try:
                self._conn.commit()
                return
            except BaseException:
                self._writer._drop_connection()
                raise
        try:
            self._conn.rollback()
        finally:
            self._writer._drop_connection()


_TRANSIENT_RETRIES = 3
# PostgreSQL: serialization_failure, deadlock_detected.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})


def is_transient(exc: object) -> bool:
    """A failure that running the same transaction again can cure."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


def _call_in_savepoint(fn: WriteFn, conn: sa.Connection, waiter: Waiter) -> Outcome:
    outcome: Outcome = (waiter, False, None)
    for _attempt in range(_TRANSIENT_RETRIES):
        savepoint = conn.begin_nested()
        outcome = _call(fn, conn, waiter)
        if outcome[1]:
            savepoint.commit()
            return outcome
        savepoint.rollback()
        if not is_transient(outcome[2]):
            break
    return outcome


def _call(fn: WriteFn, conn: sa.Connection, waiter: Waiter) -> Outcome:
    try:
        value = fn(conn)
        flush_deferred(conn)  # inside the savepoint: a failing row fails this write alone
        return waiter, True, value
    except BaseException as exc:  # handed to the caller, not swallowed
        discard_deferred(conn)  # rows the failed write queued go with its savepoint
        return waiter, False, exc


def _settle(outcomes: list[Outcome]) -> None:
    """Hand each outcome to its caller: threads directly, each event loop with one wake-up."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        waiter = outcome[0]
        if isinstance(waiter, asyncio.Future):
            by_loop.setdefault(waiter.get_loop(), []).append(outcome)
        else:
            _resolve(*outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve_all, settled)


def _resolve_all(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        _resolve(*outcome)


def _resolve(waiter: Waiter, ok: bool, value: Any) -> None:
    """Hand the outcome to the caller, unless the caller gave up waiting (cancelled)."""
    if waiter.done():
        return
    if ok:
        waiter.set_result(value)
    else:
        waiter.set_exception(value)
