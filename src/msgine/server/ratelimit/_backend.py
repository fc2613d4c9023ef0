"""Where counts live: shared Redis when configured, in-process memory otherwise or as stand-in.

Memory counts are this package's own (`_memory`); Redis counts go through `limits.aio`.
When Redis fails, every operation is redone in memory, so limits still apply per process
instead of failing open (no limits) or failing closed (an outage of Redis becoming an outage of
the gateway). One event reports the change of state each way; a background probe, at most one
per `probe_interval`, finds out when Redis is back, so requests never wait on a dead server
more than once per interval.

Going back to Redis happens once. Connections pooled before an outage are dead after a Redis
restart: had they stayed in the pool, every request drawing one would fail and switch the
gateway back to memory (measured: 4 switches and 33 s to settle with 6 concurrent clients). So
the pool is emptied when Redis fails and again before each probe, which pings on a new
connection, and a failure of an operation that started before the last change of state changes
nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from ._memory import MemoryWindows

if TYPE_CHECKING:  # redis-py and limits' Redis strategies load only when Redis is configured
    import redis.asyncio
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import RateLimiter as Strategy

StrategyName = Literal["moving-window", "sliding-window", "fixed-window"]
SecurityLog = Callable[[str, dict[str, object]], None]
T = TypeVar("T")

_STRATEGY_NAMES = ("moving-window", "sliding-window", "fixed-window")
# Failures that mean "use the stand-in"; Redis's own errors join them once Redis is configured.
_LOCAL_FAILURES: tuple[type[BaseException], ...] = (OSError, TimeoutError)


@dataclass(frozen=True)
class Strategies:
    """`limits` strategies over Redis. `exact` (moving window) serves lock-outs, whose expiry
    must be exact whatever strategy the operator chose for ordinary limits."""

    main: Strategy
    exact: Strategy


@dataclass(frozen=True)
class MemoryStores:
    """In-process counters, the same pair as `Strategies`."""

    main: MemoryWindows
    exact: MemoryWindows
    standin: bool  # True: memory standing in for an unreachable Redis

    @classmethod
    def create(cls, strategy: str, *, standin: bool, max_windows: int) -> MemoryStores:
        return cls(
            MemoryWindows(strategy, max_windows),
            MemoryWindows("moving-window", max_windows),
            standin,
        )

    def clear(self) -> None:
        self.main.clear()
        self.exact.clear()


def _limits_uri(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("redis", "rediss", "unix"):
        # The URL may hold a password: never echo it.
        raise ValueError("the Redis URL must start with redis://, rediss:// or unix://")
    return f"async+redis+unix://{rest}" if scheme == "unix" else f"async+{url}"


class Backend:
    def __init__(
        self,
        redis_url: str | None,
        strategy: StrategyName,
        key_prefix: str,
        security_log: SecurityLog,
        *,
        timeout: float,
        probe_interval: float,
        max_windows: int,
    ) -> None:
        if strategy not in _STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {strategy!r}; use one of {sorted(_STRATEGY_NAMES)}")
        self._log = security_log
        self._probe_interval = probe_interval
        self.local = MemoryStores.create(strategy, standin=False, max_windows=max_windows)
        self._standin = MemoryStores.create(strategy, standin=True, max_windows=max_windows)
        self._pool: redis.asyncio.ConnectionPool[Any] | None = None
        self._shared: Strategies | None = None
        self._redis: RedisStorage | None = None
        self._failures = _LOCAL_FAILURES
        if redis_url:
            self._connect(redis_url, strategy, key_prefix, timeout)
        self._degraded = False
        self._generation = 0  # counts changes of state; an older operation's failure is stale
        self._next_probe = 0.0
        self._probe: asyncio.Task[bool] | None = None
        self._resetting: asyncio.Task[None] | None = None  # held: the loop keeps weak references

    def _connect(self, redis_url: str, strategy: str, key_prefix: str, timeout: float) -> None:
        """Build the Redis pool and strategies; imported here so a gateway without Redis
        never loads redis-py (about 0.1 s of every start and command)."""
        import redis.asyncio
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import (
            FixedWindowRateLimiter,
            MovingWindowRateLimiter,
            SlidingWindowCounterRateLimiter,
        )
        from limits.errors import StorageError
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        classes: dict[str, type[Strategy]] = {
            "moving-window": MovingWindowRateLimiter,
            "sliding-window": SlidingWindowCounterRateLimiter,
            "fixed-window": FixedWindowRateLimiter,
        }
        self._failures = (RedisError, *_LOCAL_FAILURES, StorageError)
        # Our own pool: short timeouts and no client-side retries, so a dead Redis costs
        # one short wait, then the stand-in takes over.
        self._pool = redis.asyncio.ConnectionPool.from_url(
            redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = RedisStorage(
            _limits_uri(redis_url),
            implementation="redispy",
            key_prefix=f"{key_prefix}:rl",
            # limits types its options narrowly; the pool is passed to redis-py as is.
            **cast(dict[str, Any], {"connection_pool": self._pool}),
        )
        self._shared = Strategies(
            classes[strategy](self._redis), MovingWindowRateLimiter(self._redis)
        )

    @property
    def shared(self) -> bool:
        return self._shared is not None

    @property
    def degraded(self) -> bool:
        return self._degraded

    async def run(
        self,
        in_memory: Callable[[MemoryStores], T],
        in_redis: Callable[[Strategies], Awaitable[T]],
    ) -> T:
        """Run `in_redis` if Redis is configured and answering, else `in_memory` (synchronous:
        memory counts need no await) on this process's counters or the stand-in."""
        if self._shared is None:
            return in_memory(self.local)
        if self._degraded:
            self._maybe_probe()
            return in_memory(self._standin)
        generation = self._generation
        try:
            return await in_redis(self._shared)
        except self._failures as exc:
            if generation == self._generation:
                self._set_degraded(True, reason=type(exc).__name__)
            return in_memory(self._standin)

    async def healthy(self) -> bool:
        """Ping Redis now (True without Redis) and record any change of state."""
        if self._redis is None:
            return True
        if self._degraded and self._pool is not None:
            # Ping on a new connection: an old one may be from the server that went away.
            await self._pool.disconnect()
        ok = bool(await self._redis.check())
        self._set_degraded(not ok, reason="ping failed")
        return ok

    def _maybe_probe(self) -> None:
        if time.monotonic() < self._next_probe or (self._probe and not self._probe.done()):
            return
        self._next_probe = time.monotonic() + self._probe_interval
        self._probe = asyncio.create_task(self.healthy())

    def _set_degraded(self, degraded: bool, *, reason: str) -> None:
        if degraded == self._degraded:
            return
        self._degraded = degraded
        self._generation += 1
        if degraded:
            self._reset_pool()  # on the way back, healthy() has already done it
            self._next_probe = time.monotonic() + self._probe_interval
            self._log(
                "ratelimit_storage_degraded",
                {"storage": "redis", "fallback": "memory", "reason": reason},
            )
        else:
            self._standin.clear()  # stand-in counts end with the outage; Redis's apply again
            self._log("ratelimit_storage_recovered", {"storage": "redis"})

    def _reset_pool(self) -> None:
        """Close every pooled connection; operations still using one fail as stale."""
        if self._pool is not None:
            self._resetting = asyncio.get_running_loop().create_task(self._pool.disconnect())

    async def aclose(self) -> None:
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
        if self._pool is not None:
            await self._pool.disconnect()
