"""In-process window counters: memory mode, and the stand-in while Redis is down.

Why not `limits`' MemoryStorage here: each of its calls costs several microseconds (an
asyncio lock, key strings built per call, a timer task), and a send request makes about six
checks. These dict-and-deque counters answer synchronously in about a microsecond, which keeps
limits a small share of the send path. Redis mode still goes through `limits`.

Counts are keyed by (namespace, identity, window seconds), not by amount, so a changed limit
applies to what was already counted, as in Redis.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

#: (namespace, identity, window seconds)
Key = tuple[str, str, int]

_SWEEP_INTERVAL = 60.0  # seconds between drops of idle counters, so memory stays bounded


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


class MemoryWindows:
    """All counters of one strategy in this process. Not thread-safe: event-loop use only.

    Every method is synchronous, so a check-then-consume over several windows is atomic
    within the process: no other request runs in between.
    """

    def __init__(self, strategy: str) -> None:
        self._moving = strategy == "moving-window"
        self._sliding = strategy == "sliding-window"
        self._windows: dict[Key, _Moving | _Counter] = {}
        self._next_sweep = 0.0

    def _get(self, key: Key, now: float) -> _Moving | _Counter:
        window = self._windows.get(key)
        if window is None:
            if now >= self._next_sweep:
                self._sweep(now)
            window = _Moving() if self._moving else _Counter(self._sliding, key[2], now)
            self._windows[key] = window
        return window

    def state(self, key: Key, now: float) -> tuple[int, float]:
        """(units used, when the window next frees a unit, as Unix time); creates nothing."""
        window = self._windows.get(key)
        expiry = key[2]
        if window is None:
            return 0, now + expiry
        return window.used(expiry, now), window.reset_at(expiry, now)

    def add(self, keys: Sequence[Key], cost: int, now: float) -> None:
        for key in keys:
            self._get(key, now).add(cost, now)

    def clear(self) -> None:
        self._windows.clear()

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + _SWEEP_INTERVAL
        idle = [key for key, w in self._windows.items() if w.idle(key[2], now)]
        for key in idle:
            del self._windows[key]

    def __len__(self) -> int:
        return len(self._windows)
