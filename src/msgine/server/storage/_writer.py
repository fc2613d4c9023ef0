"""Group commit: one writer thread runs queued write functions in shared transactions.

SQLite allows one writer and each fsync costs about a millisecond, so committing per request caps
throughput. Requests queue their write function; the writer runs everything queued so far in one
transaction (each function in its own savepoint, so one failure does not sink the others),
commits once, then wakes every caller. Nothing is acknowledged before its commit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from msgine.server.storage._engine import begin_write

T = TypeVar("T")
WriteFn = Callable[[sa.Connection], Any]

_STOP = object()


class GroupCommitWriter:
    def __init__(self, engine: Engine, *, max_batch: int = 256, name: str = "msgine-writer"):
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[sa.Connection], T]) -> Future[T]:
        future: Future[T] = Future()
        if threading.current_thread() is self._thread:
            raise RuntimeError("write() called from inside a write function")
        self._queue.put((fn, future))
        return future

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
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

    def _commit(self, batch: list[tuple[WriteFn, Future[Any]]]) -> None:
        """Optimistically run the whole batch in one transaction without savepoints; if any
        function fails, roll it all back and run each function in its own savepoint, so the
        failure is handed to its caller alone. Write functions touch only the database, so
        running one again after a rollback is safe.

        Several processes batching writes to the same rows in different orders can deadlock
        on PostgreSQL; the database aborts one side, and that side simply runs again."""
        for _attempt in range(_TRANSIENT_RETRIES):
            error = self._try_fast(batch)
            if error is None:
                return
            if not is_transient(error):
                break
        self._commit_isolated(batch)

    def _try_fast(self, batch: list[tuple[WriteFn, Future[Any]]]) -> Exception | None:
        values: list[Any] = []
        try:
            with begin_write(self._engine) as conn:
                for fn, _future in batch:
                    values.append(fn(conn))
        except Exception as exc:
            return exc
        for (_fn, future), value in zip(batch, values, strict=True):
            _resolve(future, True, value)
        return None

    def _commit_isolated(self, batch: list[tuple[WriteFn, Future[Any]]]) -> None:
        results: list[tuple[Future[Any], bool, Any]] = []
        try:
            with begin_write(self._engine) as conn:
                for fn, future in batch:
                    results.append(_call_in_savepoint(fn, conn, future))
        except BaseException as exc:
            for _fn, future in batch:
                _resolve(future, False, exc)
            return
        for future, ok, value in results:
            _resolve(future, ok, value)


_TRANSIENT_RETRIES = 3
# PostgreSQL: serialization_failure, deadlock_detected.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})


def is_transient(exc: object) -> bool:
    """A failure that running the same transaction again can cure."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


def _call_in_savepoint(
    fn: WriteFn, conn: sa.Connection, future: Future[Any]
) -> tuple[Future[Any], bool, Any]:
    outcome: tuple[Future[Any], bool, Any] = (future, False, None)
    for _attempt in range(_TRANSIENT_RETRIES):
        savepoint = conn.begin_nested()
        outcome = _call(fn, conn, future)
        if outcome[1]:
            savepoint.commit()
            return outcome
        savepoint.rollback()
        if not is_transient(outcome[2]):
            break
    return outcome


def _resolve(future: Future[Any], ok: bool, value: Any) -> None:
    """Hand the outcome to the caller, unless the caller gave up waiting (cancelled)."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _call(fn: WriteFn, conn: sa.Connection, future: Future[Any]) -> tuple[Future[Any], bool, Any]:
    try:
        return future, True, fn(conn)
    except BaseException as exc:  # handed to the caller, not swallowed
        return future, False, exc
