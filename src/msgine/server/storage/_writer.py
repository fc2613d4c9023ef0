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
        if len(batch) == 1:
            self._commit_single(*batch[0])
            return
        results: list[tuple[Future[Any], bool, Any]] = []
        try:
            with self._engine.begin() as conn:
                for fn, future in batch:
                    savepoint = conn.begin_nested()
                    try:
                        value = fn(conn)
                    except BaseException as exc:  # handed to the caller, not swallowed
                        savepoint.rollback()
                        results.append((future, False, exc))
                    else:
                        savepoint.commit()
                        results.append((future, True, value))
        except BaseException as exc:
            for _fn, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, ok, value in results:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _commit_single(self, fn: WriteFn, future: Future[Any]) -> None:
        try:
            with self._engine.begin() as conn:
                value = fn(conn)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(value)
