"""Lock-outs of client addresses after repeated failed authentications.

Counts and lock-outs always use an exact moving window, whatever strategy ordinary limits use,
since a lock-out's expiry must be exact. Lock-outs started by this process are also kept in a
plain dict, checked before any storage call: cheap on every request, and still in force while
Redis is down.
"""

from __future__ import annotations

import time

from limits import RateLimitItemPerSecond

from ._backend import MemoryStores, Strategies
from ._decision import seconds_until
from ._evaluate import specs
from ._parse import stable

_TAG = "mw"
_MAX_TRACKED = 10_000


class Lockouts:
    def __init__(self, failure_limit: str, lockout_seconds: int, divisor: int) -> None:
        self._failures = specs(failure_limit)
        self._lock_item = stable(RateLimitItemPerSecond(1, lockout_seconds))
        self.seconds = lockout_seconds
        self._divisor = divisor
        self._local: dict[str, float] = {}

    # -- checking ----------------------------------------------------------------------------

    def local(self, bucket: str, now: float) -> int:
        """Seconds left of a lock-out this process knows of (0 if none)."""
        until = self._local.get(bucket)
        if until is None:
            return 0
        if until > now:
            return seconds_until(until, now)
        del self._local[bucket]
        return 0

    def in_memory(self, stores: MemoryStores, bucket: str) -> int:
        now = time.time()
        used, reset_at = stores.exact.state(("lockout", bucket, self.seconds), now)
        return seconds_until(reset_at, now) if used else 0

    async def in_redis(self, strategies: Strategies, bucket: str) -> int:
        stats = await strategies.exact.get_window_stats(self._lock_item, _TAG, "lockout", bucket)
        return seconds_until(stats.reset_time, time.time()) if stats.remaining <= 0 else 0

    # -- counting failures -------------------------------------------------------------------

    def fail_in_memory(self, stores: MemoryStores, bucket: str) -> bool:
        """Count a failure; True if it started a lock-out."""
        now = time.time()
        exhausted = False
        for _, amount, expiry in self._failures:
            if stores.standin:
                amount = max(1, amount // self._divisor)
            key = ("authfail", bucket, expiry)
            used, _ = stores.exact.state(key, now)
            if used < amount:
                stores.exact.add([key], 1, now)
                used += 1
            exhausted = exhausted or used >= amount
        if not exhausted or self.in_memory(stores, bucket):
            return False
        stores.exact.add([("lockout", bucket, self.seconds)], 1, now)
        return True

    async def fail_in_redis(self, strategies: Strategies, bucket: str) -> bool:
        exhausted = False
        for item, _, _ in self._failures:
            ids = (_TAG, "authfail", bucket)
            counted = await strategies.exact.hit(item, *ids)
            stats = await strategies.exact.get_window_stats(item, *ids)
            exhausted = exhausted or not counted or stats.remaining <= 0
        # A lock-out already running is not extended: hit() refuses a second entry.
        return exhausted and bool(
            await strategies.exact.hit(self._lock_item, _TAG, "lockout", bucket)
        )

    def lock_locally(self, bucket: str) -> None:
        now = time.time()
        if len(self._local) >= _MAX_TRACKED:
            self._local = {b: t for b, t in self._local.items() if t > now}
        self._local[bucket] = now + self.seconds
