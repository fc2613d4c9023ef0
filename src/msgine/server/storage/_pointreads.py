"""Point reads for event loops on PostgreSQL: one thread runs them, in turn, on its own
connection.

The key lookup runs on every request and is a network round trip, so it must not block the
loop. ``asyncio.to_thread`` costs, per read, an executor hand-off (a semaphore, a work item,
a copied context) and a chain of two futures whose answer wakes the loop on its own; on the
send path that was about a tenth of the event loop's time. Here the loop queues the read and
its future; the thread runs everything queued, then hands the answers to each loop with one
wake-up (as the group-commit writer does). A point read takes well under a millisecond, so
one thread serves thousands a second. One thread, because more cost more: four threads taking
fair shares of the queue cost 60-80 µs more gateway CPU and 20-35 µs more database CPU per
send (fewer reads per wake-up, more threads trading the interpreter lock).

Reads are made one at a time, so on a database a millisecond away a round trip per read would
cap a process at about a thousand key lookups a second. A read by key that many requests make
(the key lookup) is therefore a :class:`Lookup`: the lookups queued at one moment are made
together, one statement for all their keys, so a wake-up costs one round trip however many
requests it answers.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from msgine.server.storage._writer import Outcome, _settle

T = TypeVar("T")

_STOP = object()


@dataclass(frozen=True, eq=False)
class Lookup:
    """A point read by key that concurrent callers share: ``fetch(conn, keys)`` reads all the
    keys in one statement and answers ``{key: value}``, leaving out the keys it did not find."""

    fetch: Callable[[sa.Connection, list[Any]], Mapping[Any, Any]]


class PointReadLane:
    """``run(fn)`` runs one read (on the calling thread's pinned connection); the lane calls
    it from its one thread, started on first use."""

    def __init__(self, run: Callable[[Callable[[sa.Connection], Any]], Any]) -> None:
        self._run_one = run
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[sa.Connection], T]) -> asyncio.Future[T]:
        """Queue ``fn``; the future resolves on the caller's loop with its answer."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._put((fn, future, None, None))
        return future

    def lookup(self, lookup: Lookup, key: Any) -> asyncio.Future[Any]:
        """Queue a read of ``key``, made with the other keys of ``lookup`` queued at the same
        moment; the future resolves with its value, or None when it was not found."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put((None, future, lookup, key))
        return future

    def _put(self, entry: tuple[Any, ...]) -> None:
        if self._thread is None:
            self._start()
        self._queue.put(entry)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="msgine-point-reads", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while item is not _STOP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            outcomes: list[Outcome] = []
            lookups: dict[Lookup, list[tuple[Any, asyncio.Future[Any]]]] = {}
            for entry in batch:
                if entry is _STOP:
                    continue
                fn, future, lookup, key = entry
                if lookup is not None:
                    lookups.setdefault(lookup, []).append((key, future))
                    continue
                try:
                    outcomes.append((future, True, self._run_one(fn)))
                except Exception as exc:  # handed to the caller
                    outcomes.append((future, False, exc))
            for lookup, waiting in lookups.items():
                outcomes += self._look_up(lookup, waiting)
            _settle(outcomes)
            if batch[-1] is _STOP:
                return

    def _look_up(
        self, lookup: Lookup, waiting: list[tuple[Any, asyncio.Future[Any]]]
    ) -> list[Outcome]:
        keys = list(dict.fromkeys(key for key, _ in waiting))
        try:
            found = self._run_one(lambda conn: lookup.fetch(conn, keys))
        except Exception as exc:  # every caller of the statement gets its error
            return [(future, False, exc) for _, future in waiting]
        return [(future, True, found.get(key)) for key, future in waiting]

    def close(self) -> None:
        """Answer what is queued, then stop the thread."""
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout=10)
            self._thread = None
