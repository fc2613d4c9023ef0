"""In-process window counters: memory mode, and the stand-in while Redis is down.

Why not `limits`' MemoryStorage here: each of its calls costs several microseconds (an
asyncio lock, key strings built per call, a timer task), and a send request makes about six
checks. These dict-and-deque counters answer synchronously in about a microsecond, which keeps
limits a small share of the send path. Redis mode still goes through `limits`.

Counts are keyed by (namespace, identity, window seconds), not by amount, so a changed limit
applies to what was already counted, as in Redis.

Memory is bounded by configuration, not by traffic. Each exact window costs about 1 KiB (a
moving window's two deques); any API client can make new ones (one per recipient it sends
to). So at most ``max_windows`` are kept exactly; past that, new identities are counted in a
count-min sketch per (namespace, window length): fixed tables of counters (``_SKETCH_DEPTH``
rows of ``_SKETCH_WIDTH``, for this window and the last: 2 MiB) that never under-count, so
limits keep applying, as a sliding window counter, and at worst refuse early when the tables
are crowded. Conservative update (only the cells at the least count grow) keeps that rare:
none was seen at 200,000 recipients an hour against ``10/hour``. A sketch is dropped when its
windows have passed, like an idle exact window.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from array import array
from collections import deque
from collections.abc import Sequence

#: (namespace, identity, window seconds)
Key = tuple[str, str, int]

_SWEEP_INTERVAL = 60.0  # seconds between drops of idle counters, so memory stays bounded
_FULL_SWEEP_INTERVAL = 1.0  # when full: sweeping is linear in the windows kept, so not each call
DEFAULT_MAX_WINDOWS = 20_000
_SKETCH_WIDTH = 1 << 16
_SKETCH_DEPTH = 4
_MAX_COUNT = 2**31 - 1
_SKETCH_KEY = secrets.token_bytes(16)
assert _SKETCH_WIDTH == 1 << 16  # two digest bytes a row, of an 8-byte digest:
assert _SKETCH_DEPTH <= 4


class _Moving:
    """Exact moving window: time and cost of each admitted hit, and their sum.

    Two deques of floats and ints rather than one of tuples: the garbage collector tracks
    tuples, not floats, and a busy window holds one entry per request.
    """

    __slots__ = ("costs", "times", "total")

    def __init__(self) -> None:
        self.times: deque[float] = deque()
        self.costs: deque[int] = deque()
        self.total = 0

    def used(self, expiry: int, now: float) -> int:
        times, horizon = self.times, now - expiry
        while times and times[0] <= horizon:
            times.popleft()
            self.total -= self.costs.popleft()
        return self.total

    def reset_at(self, expiry: int, now: float) -> float:
        return self.times[0] + expiry if self.times else now + expiry

    def add(self, cost: int, now: float) -> None:
        self.times.append(now)
        self.costs.append(cost)
        self.total += cost

    def idle(self, expiry: int, now: float) -> bool:
        return self.used(expiry, now) == 0


class _Counter:
    """Fixed window (from the first hit) or sliding-window counter (aligned windows, the
    previous one weighted by how much of it still overlaps, as `limits` does)."""

    __slots__ = ("current", "previous", "sliding", "start")

    def __init__(self, sliding: bool, expiry: int, now: float) -> None:
        self.sliding = sliding
        self.start = now - now % expiry if sliding else now
        self.current = 0
        self.previous = 0

    def _roll(self, expiry: int, now: float) -> None:
        elapsed = now - self.start
        if elapsed < expiry:
            return
        if self.sliding:
            self.previous = self.current if elapsed < 2 * expiry else 0
            self.start = now - now % expiry
        else:
            self.previous, self.start = 0, now
        self.current = 0

    def used(self, expiry: int, now: float) -> int:
        self._roll(expiry, now)
        if not self.previous:
            return self.current
        weight = (expiry - (now - self.start)) / expiry
        return math.floor(self.previous * weight) + self.current

    def reset_at(self, expiry: int, now: float) -> float:
        return self.start + expiry

    def add(self, cost: int, now: float) -> None:
        self.current += cost

    def idle(self, expiry: int, now: float) -> bool:
        return self.used(expiry, now) == 0


class _Sketch:
    """Count-min sketch of one (namespace, window length) as a sliding-window counter: the
    estimate of an identity is the least of its ``_SKETCH_DEPTH`` cells, which collisions can
    only raise. Aligned windows, the previous one weighted by how much of it still overlaps."""

    __slots__ = ("added", "current", "expiry", "previous", "start")

    def __init__(self, expiry: int, now: float) -> None:
        self.expiry = expiry
        self.start = now - now % expiry
        self.current = self._table()
        self.previous = self._table()
        self.added = [0, 0]  # to previous and current: both zero, nothing left to remember

    @staticmethod
    def _table() -> list[array[int]]:
        # 32-bit counters: 2**31 hits of one identity in one window is far past any limit.
        return [array("i", bytes(4 * _SKETCH_WIDTH)) for _ in range(_SKETCH_DEPTH)]

    @staticmethod
    def cells(identity: str) -> list[int]:
        # One keyed digest split into a cell per row: rows must collide independently (the
        # cells of hash((row, identity)) differ by a constant between rows, so what collides
        # in one row collides in all), and the per-process key keeps a client from aiming
        # collisions at a victim.
        digest = hashlib.blake2b(identity.encode(), digest_size=8, key=_SKETCH_KEY).digest()
        return [int.from_bytes(digest[2 * row : 2 * row + 2]) for row in range(_SKETCH_DEPTH)]

    def _roll(self, now: float) -> None:
        elapsed = now - self.start
        if elapsed < self.expiry:
            return
        if elapsed < 2 * self.expiry:
            self.previous, self.current = self.current, self._table()
            self.added = [self.added[1], 0]
        else:
            self.previous, self.current = self._table(), self._table()
            self.added = [0, 0]
        self.start = now - now % self.expiry

    def used(self, cells: list[int], now: float) -> int:
        self._roll(now)
        current = min(row[cell] for row, cell in zip(self.current, cells, strict=True))
        previous = min(row[cell] for row, cell in zip(self.previous, cells, strict=True))
        weight = (self.expiry - (now - self.start)) / self.expiry
        return math.floor(previous * weight) + current

    def add(self, cells: list[int], cost: int, now: float) -> None:
        self._roll(now)
        pairs = list(zip(self.current, cells, strict=True))
        count = min(row[cell] for row, cell in pairs) + cost
        for row, cell in pairs:
            if row[cell] < count:
                row[cell] = min(count, _MAX_COUNT)
        self.added[1] += cost

    def idle(self, now: float) -> bool:
        self._roll(now)
        return not any(self.added)


class _Sketched:
    """One identity's view of a sketch, with the window interface of the exact counters."""

    __slots__ = ("cells", "sketch")

    def __init__(self, sketch: _Sketch, identity: str) -> None:
        self.sketch = sketch
        self.cells = _Sketch.cells(identity)

    def used(self, expiry: int, now: float) -> int:
        return self.sketch.used(self.cells, now)

    def reset_at(self, expiry: int, now: float) -> float:
        return self.sketch.start + expiry

    def add(self, cost: int, now: float) -> None:
        self.sketch.add(self.cells, cost, now)


class MemoryWindows:
    """All counters of one strategy in this process. Not thread-safe: event-loop use only.

    Every method is synchronous, so a check-then-consume over several windows is atomic
    within the process: no other request runs in between.
    """

    def __init__(self, strategy: str, max_windows: int = DEFAULT_MAX_WINDOWS) -> None:
        if max_windows < 1:
            raise ValueError("max_windows must be at least 1")
        self._moving = strategy == "moving-window"
        self._sliding = strategy == "sliding-window"
        self._max = max_windows
        self._windows: dict[Key, _Moving | _Counter] = {}
        self._sketches: dict[tuple[str, int], _Sketch] = {}
        self._next_sweep = 0.0

    def _get(self, key: Key, now: float) -> _Moving | _Counter | _Sketched:
        window = self._windows.get(key)
        if window is not None:
            return window
        sketched = self._sketched(key, now)
        if sketched is not None and sketched.used(key[2], now):
            return sketched  # counted there before: it stays there, or its count would be lost
        if now >= self._next_sweep:  # every second when full, every minute otherwise
            self._sweep(now)
        if len(self._windows) >= self._max:
            if sketched is None:
                sketch = self._sketches[key[0], key[2]] = _Sketch(key[2], now)
                sketched = _Sketched(sketch, key[1])
            return sketched
        window = _Moving() if self._moving else _Counter(self._sliding, key[2], now)
        self._windows[key] = window
        return window

    def _sketched(self, key: Key, now: float) -> _Sketched | None:
        sketch = self._sketches.get((key[0], key[2]))
        return None if sketch is None else _Sketched(sketch, key[1])

    def state(self, key: Key, now: float) -> tuple[int, float]:
        """(units used, when the window next frees a unit, as Unix time); creates nothing."""
        window: _Moving | _Counter | _Sketched | None = self._windows.get(key)
        expiry = key[2]
        if window is None:
            window = self._sketched(key, now)
            if window is None:
                return 0, now + expiry
        return window.used(expiry, now), window.reset_at(expiry, now)

    def add(self, keys: Sequence[Key], cost: int, now: float) -> None:
        for key in keys:
            self._get(key, now).add(cost, now)

    def clear(self) -> None:
        self._windows.clear()
        self._sketches.clear()

    def _sweep(self, now: float) -> None:
        full = len(self._windows) >= self._max
        self._next_sweep = now + (_FULL_SWEEP_INTERVAL if full else _SWEEP_INTERVAL)
        idle = [key for key, w in self._windows.items() if w.idle(key[2], now)]
        for key in idle:
            del self._windows[key]
        for name in [name for name, sketch in self._sketches.items() if sketch.idle(now)]:
            del self._sketches[name]

    @property
    def sketched(self) -> int:
        """How many (namespace, window) sketches are in use: past the bound when non-zero."""
        return len(self._sketches)

    def __len__(self) -> int:
        return len(self._windows)
