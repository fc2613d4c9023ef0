"""Group commit: queued write functions run in shared transactions, committed once.

SQLite allows one writer and each fsync costs about a millisecond, so committing per request caps
throughput. Requests queue their write function; the writer runs everything queued so far in one
transaction, commits once, then wakes every caller. Nothing is acknowledged before its commit.
Rows a write function defers (``Direct.defer``) are inserted together at the end of the batch,
and reads its callers declare (``BatchRead``) are made together at its start.

Two lanes share that logic:

- the writer thread, for callers on other threads and for PostgreSQL (whose statements are
  network round trips that must not block an event loop). It keeps one connection open (a pool
  checkout per batch cost more than a small batch's statements) and settles all of a batch's
  asyncio callers with one wake-up of their event loop;
- on SQLite, a *loop lane* for the event loop that writes most: the batch's statements run on
  the loop itself (microseconds each, in the same process) and only the COMMIT, whose fsync is
  the slow part, goes to a thread. Running the statements in the writer thread instead made the
  two threads trade the interpreter lock at every SQLite call, which cost about a fifth of a
  send's CPU. The loop never waits for a lock: its connection does not retry a busy database,
  and a batch that finds another writer holding the lock (a CLI command, a second process, the
  writer thread) is handed to the writer thread, which waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
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
Outcome = tuple[Waiter, bool, Any]


@dataclass(frozen=True, slots=True)
class BatchRead:
    """A read a write function will make, declared when it is queued (``reads`` of
    ``Database.write``/``awrite``). When every write of a batch declared its reads, the writer
    makes them before running the batch: the reads that share a ``fetch`` are made by one call,
    ``fetch(conn, [key, ...])``, which leaves its answers in the batch's memo (``batch_memo``),
    where the write looks before asking the database. On PostgreSQL that is one round trip
    for the batch instead of one per write.

    Declaring promises the write changes nothing that any declared read of the batch covers
    (a send reads the suppression list and never writes it), so reading first is the same as
    reading in turn. A batch with one undeclared write (an opt-out, say) reads nothing ahead.
    """

    fetch: Callable[[sa.Connection, list[Any]], None]
    key: Any


#: A queued write: its function, who waits for it, and its declared reads (None: undeclared).
Item = tuple[WriteFn, Waiter, Sequence[BatchRead] | None]

_STOP = object()


class GroupCommitWriter:
    """``loop_lane``: run asyncio callers' batches on their event loop (SQLite only, see the
    module docstring); otherwise every batch runs in the writer thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 256,
        name: str = "msgine-writer",
        loop_lane: bool = False,
    ):
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._conn: sa.Connection | None = None
        self._loop_lane = loop_lane
        self._lane: _LoopLane | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(
        self, fn: Callable[[sa.Connection], T], reads: Sequence[BatchRead] | None = None
    ) -> Future[T]:
        """Queue ``fn`` (and the reads it declares, see ``BatchRead``); the future resolves
        after its transaction commits."""
        future: Future[T] = Future()
        self._put((fn, future, reads))
        return future

    def submit_async(
        self, fn: Callable[[sa.Connection], T], reads: Sequence[BatchRead] | None = None
    ) -> asyncio.Future[T]:
        """Queue ``fn`` from a coroutine; the asyncio future resolves after the commit.

        Cancelling the future does not withdraw the write: it may already be committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        lane = self._lane_for(loop)
        if lane is not None:
            lane.put((fn, future, reads))
        else:
            self._put((fn, future, reads))
        return future

    def _lane_for(self, loop: asyncio.AbstractEventLoop) -> _LoopLane | None:
        """The loop lane, bound to the first event loop that writes (a closed loop's lane is
        replaced); other loops use the writer thread."""
        if not self._loop_lane:
            return None
        lane = self._lane
        if lane is None or lane.loop.is_closed():
            if lane is not None:
                lane.close()
            lane = self._lane = _LoopLane(self, loop)
        return lane if lane.loop is loop else None

    def _put(self, item: Item) -> None:
        lane = self._lane
        inside = lane is not None and lane.running_in == threading.get_ident()
        if inside or threading.current_thread() is self._thread:
            raise RuntimeError("write() called from inside a write function")
        self._queue.put(item)

    def _queue_for_thread(self, batch: list[Item]) -> None:
        """Hand a loop lane's batch to the writer thread, which waits for a held lock."""
        for item in batch:
            self._queue.put(item)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)
        if self._lane is not None:
            self._lane.close()
            self._lane = None

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
                outcomes = _run_all(conn, batch)
        except Exception as exc:
            return [], exc
        return outcomes, None

    def _commit_isolated(self, batch: list[Item]) -> list[Outcome]:
        try:
            with self._transaction() as conn:
                return _each_in_savepoint(conn, batch)
        except BaseException as exc:
            return [(item[1], False, exc) for item in batch]

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


class _LoopLane:
    """A batch's statements on the event loop, its COMMIT in a thread (SQLite only).

    One batch at a time: writes queued while a batch commits form the next batch, so a busy
    loop's fsyncs each serve many requests. Used from its loop only, but for ``close``.
    """

    def __init__(self, writer: GroupCommitWriter, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: The thread running write functions right now (they must not write again), or None.
        self.running_in: int | None = None
        self._writer = writer
        self._pending: list[Item] = []
        self._scheduled = False
        self._committing = False
        self._busy_since: float | None = None  # loop time of the first refusal in a row
        self._conn: sa.Connection | None = None
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="msgine-commit")

    def put(self, item: Item) -> None:
        if self.running_in is not None:
            raise RuntimeError("write() called from inside a write function")
        self._pending.append(item)
        if not (self._scheduled or self._committing):
            self._scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._committing or not self._pending:
            return
        size = self._writer._max_batch
        batch, self._pending = self._pending[:size], self._pending[size:]
        try:
            self._run(batch)
        except Exception as exc:  # never leave a caller waiting: nothing was committed
            self._drop_connection()
            _resolve_all([(item[1], False, exc) for item in batch])
            self._after()

    def _run(self, batch: list[Item]) -> None:
        conn = self._connection()
        try:
            start_write(conn)
        except sa.exc.OperationalError as exc:
            if not _is_busy(exc):
                raise
            conn.rollback()
            self._wait_for_lock(batch)
            return
        self._busy_since = None
        self.running_in = threading.get_ident()
        try:
            outcomes = _run_all_or_each(conn, batch)
        finally:
            self.running_in = None
        done = self.loop.run_in_executor(self._committer, conn.commit)
        self._committing = True
        done.add_done_callback(lambda future: self._committed(future, outcomes))

    def _wait_for_lock(self, batch: list[Item]) -> None:
        """Another writer (a second process, a CLI command, the writer thread) holds the lock.
        Try again shortly, with the writes queued meanwhile; a lock held longer than
        ``_BUSY_PATIENCE`` (a large purge) is waited for by the writer thread instead.

        Why not SQLite's own busy wait: it would block the loop, and it sleeps in steps of up
        to 100 ms, so a waiter often sleeps on long after the lock is free."""
        now = self.loop.time()
        if self._busy_since is None:
            self._busy_since = now
        waited = now - self._busy_since
        if waited >= _BUSY_PATIENCE:
            self._writer._queue_for_thread(batch)
            self._after()
            return
        self._pending[:0] = batch
        self._scheduled = True
        self.loop.call_later(min(_BUSY_RETRY * (1 + waited * 100), 0.01), self._flush)

    def _committed(self, future: asyncio.Future[None], outcomes: list[Outcome]) -> None:
        self._committing = False
        error = RuntimeError("commit cancelled") if future.cancelled() else future.exception()
        if error is not None:
            self._drop_connection()  # its uncommitted transaction goes with it
            outcomes = [(waiter, False, error) for waiter, _ok, _value in outcomes]
        _resolve_all(outcomes)
        self._after()

    def _after(self) -> None:
        if self._pending and not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._flush)

    def _connection(self) -> sa.Connection:
        if self._conn is None:
            conn = self._writer._engine.connect()
            # Never wait for the lock on the event loop (see _wait_for_lock). On the driver's
            # connection: through SQLAlchemy the PRAGMA would begin a transaction.
            conn.connection.driver_connection.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()  # not back to the pool: it does not wait for locks
                conn.close()

    def close(self) -> None:
        self._committer.shutdown(wait=True)
        self._drop_connection()


_BUSY_RETRY = 0.0005  # seconds before trying a busy lock again; grows while it stays busy
_BUSY_PATIENCE = 0.25


def _is_busy(exc: sa.exc.OperationalError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _run_all(conn: sa.Connection, batch: list[Item]) -> list[Outcome]:
    """The batch's declared reads, every function of the batch in the open transaction, then
    the rows they deferred."""
    _read_ahead(conn, batch)
    outcomes = [(waiter, True, fn(conn)) for fn, waiter, _reads in batch]
    flush_deferred(conn)
    return outcomes


def _read_ahead(conn: sa.Connection, batch: list[Item]) -> None:
    """Make the batch's declared reads, one ``fetch`` call for all the reads sharing it, when
    every write declared its reads (``BatchRead``). A lone write makes its own reads: reading
    ahead would save it nothing."""
    if len(batch) < 2:
        return
    keys: dict[Callable[[sa.Connection, list[Any]], None], list[Any]] = {}
    for _fn, _waiter, reads in batch:
        if reads is None:
            return
        for read in reads:
            keys.setdefault(read.fetch, []).append(read.key)
    for fetch, fetched in keys.items():
        fetch(conn, fetched)


def _run_all_or_each(conn: sa.Connection, batch: list[Item]) -> list[Outcome]:
    """``_run_all`` in the open write transaction, inside a savepoint; if any function fails,
    the savepoint is rolled back and each function runs in a savepoint of its own, so the
    failure reaches its caller alone. The transaction (and SQLite's write lock) stays open
    throughout, for the caller to commit."""
    start_deferring(conn)
    try:
        savepoint = conn.begin_nested()
        try:
            outcomes = _run_all(conn, batch)
        except Exception:
            savepoint.rollback()
            discard_deferred(conn)
            return _each_in_savepoint(conn, batch)
        savepoint.commit()
        return outcomes
    finally:
        stop_deferring(conn)


_TRANSIENT_RETRIES = 3
# PostgreSQL: serialization_failure, deadlock_detected.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})


def is_transient(exc: object) -> bool:
    """A failure that running the same transaction again can cure."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


def _each_in_savepoint(conn: sa.Connection, batch: list[Item]) -> list[Outcome]:
    """Each function in a savepoint of its own: a failure reaches its caller alone."""
    return [_call_in_savepoint(fn, conn, waiter) for fn, waiter, _reads in batch]


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
