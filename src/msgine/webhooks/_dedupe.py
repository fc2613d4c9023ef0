"""Process each webhook event once, although deliveries are retried and may arrive twice.

A store records event ids in two states: ``processing`` (a claim, held for ``lease`` seconds so a
crashed worker does not block the event forever) and ``done`` (kept for ``ttl`` seconds, longer
than the sender's retry schedule). ``Deduplicator.processing`` claims before the handler runs,
marks the id done when it returns, and releases the claim when it raises, so the sender's next
retry can process the event.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

DEFAULT_TTL = 3 * 24 * 3600
DEFAULT_LEASE = 300


class DedupeStore(Protocol):
    def claim(self, event_id: str) -> bool:
        """True when this caller now owns the event; False when it is done or being processed."""
        ...

    def complete(self, event_id: str) -> None: ...

    def release(self, event_id: str) -> None: ...


class Deduplicator:
    def __init__(self, store: DedupeStore) -> None:
        self.store = store

    def claim(self, event_id: str) -> bool:
        return self.store.claim(event_id)

    def complete(self, event_id: str) -> None:
        self.store.complete(event_id)

    def release(self, event_id: str) -> None:
        self.store.release(event_id)

    @contextmanager
    def processing(self, event_id: str) -> Iterator[bool]:
        """Yields True when the caller should process the event, False for a duplicate."""
        if not self.store.claim(event_id):
            yield False
            return
        try:
            yield True
        except BaseException:
            self.store.release(event_id)
            raise
        self.store.complete(event_id)


class MemoryDedupeStore:
    """One process only: bounded (oldest ids evicted first) and expiring. Thread-safe."""

    def __init__(
        self,
        max_entries: int = 100_000,
        ttl: float = DEFAULT_TTL,
        *,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.ttl = ttl
        self.lease = lease
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bool, float]] = OrderedDict()  # id -> (done, expiry)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def _put(self, event_id: str, done: bool, lifetime: float) -> None:
        self._entries[event_id] = (done, self._clock() + lifetime)
        self._entries.move_to_end(event_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def claim(self, event_id: str) -> bool:
        with self._lock:
            now = self._clock()
            while self._entries:  # drop expired ids at the old end; the rest expire on lookup
                oldest = next(iter(self._entries.values()))
                if oldest[1] > now:
                    break
                self._entries.popitem(last=False)
            entry = self._entries.get(event_id)
            if entry is not None and entry[1] > now:
                return False
            self._put(event_id, False, self.lease)
            return True

    def complete(self, event_id: str) -> None:
        with self._lock:
            self._put(event_id, True, self.ttl)

    def release(self, event_id: str) -> None:
        with self._lock:
            entry = self._entries.get(event_id)
            if entry is not None and not entry[0]:
                del self._entries[event_id]
