"""The rate-limiting engine: limits per key, account, address and recipient, and lock-outs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.util import WindowStats

from ._address import address_bucket
from ._backend import Backend, SecurityLog, Strategies, StrategyName
from ._decision import RateDecision, seconds_until
from ._geo import GeoPolicy
from ._identity import check_identity, check_namespace
from ._parse import as_items, scaled, stable

IP_NAMESPACE = "ip"
# Identities in these namespaces are not personal data and help an operator act on an event.
_LOGGABLE_NAMESPACES = frozenset({"key", "account", IP_NAMESPACE})
_RESERVED_NAMESPACES = frozenset({"authfail", "lockout"})
_STRATEGY_TAGS = {"moving-window": "mw", "sliding-window": "sw", "fixed-window": "fw"}
_EXACT_TAG = "mw"
_MAX_REFUSALS_TRACKED = 10_000

Check = tuple[str, str, str | Sequence[RateLimitItem]]


def _noop_log(event: str, fields: dict[str, object]) -> None:
    return None


@dataclass(frozen=True)
class _Window:
    namespace: str
    identity: str
    item: RateLimitItem
    stats: WindowStats


class RateLimiter:
    """Checks and consumes limits in shared Redis, or in memory without (or while down).

    Keys are `<key_prefix>:rl:LIMITER/<strategy>/<namespace>/<identity>/<window>`: the strategy
    is part of the key (one key used by two strategies is a Redis WRONGTYPE error) and the
    amount is not (a changed limit applies to the count already made).
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        strategy: StrategyName = "moving-window",
        key_prefix: str = "msgine",
        security_log: SecurityLog | None = None,
        auth_failure_limit: str = "10/5minutes",
        lockout_seconds: int = 900,
        degraded_divisor: int = 2,
        strict_namespaces: Sequence[str] = (IP_NAMESPACE,),
        redis_timeout: float = 0.3,
        probe_interval: float = 5.0,
    ) -> None:
        if lockout_seconds < 1 or degraded_divisor < 1:
            raise ValueError("lockout_seconds and degraded_divisor must be at least 1")
        self._log = security_log or _noop_log
        self._tag = _STRATEGY_TAGS.get(strategy, strategy)
        self._backend = Backend(
            redis_url,
            strategy,
            key_prefix,
            self._log,
            timeout=redis_timeout,
            probe_interval=probe_interval,
        )
        self._auth_items = as_items(auth_failure_limit)
        self._lock_item = stable(RateLimitItemPerSecond(1, lockout_seconds))
        self._divisor = degraded_divisor
        self._strict = frozenset(strict_namespaces)
        self._refused_until: dict[tuple[str, str, str], float] = {}
        # This process's lock-outs (bucket -> unix time of expiry): checked before any storage
        # call, and kept while Redis is down. A plain dict: a lookup costs far less than a
        # storage round, and this runs before every request.
        self._local_locks: dict[str, float] = {}
        self._namespaces_seen: set[str] = set()

    # -- ordinary limits -------------------------------------------------------------------

    async def hit(
        self,
        namespace: str,
        identity: str,
        limits: str | Sequence[RateLimitItem],
        *,
        cost: int = 1,
    ) -> RateDecision:
        """Consume `cost` from every limit, or from none if any lacks room.

        `identity` must be opaque: a key id, account id, address, or `opaque_identity()` of a
        recipient number; phone-number-like identities raise ValueError.
        """
        return await self.hit_many([(namespace, identity, limits)], cost=cost)

    async def hit_many(self, checks: Sequence[Check], *, cost: int = 1) -> RateDecision:
        """Like `hit` over several (namespace, identity, limits): all are consumed or none.

        All windows are read first and consumed only if each has room. Each consumption is
        itself atomic, so no limit is ever exceeded; two requests racing for the last unit
        can only make the loser spend one unit of the limits it passed before losing.
        """
        return await self._evaluate(checks, cost, consume=True)

    async def test(
        self, namespace: str, identity: str, limits: str | Sequence[RateLimitItem]
    ) -> RateDecision:
        """The decision a hit of cost 1 would get, without consuming anything."""
        return await self._evaluate([(namespace, identity, limits)], 1, consume=False)

    async def _evaluate(self, checks: Sequence[Check], cost: int, *, consume: bool) -> RateDecision:
        if cost < 1:
            raise ValueError("cost must be at least 1")
        if not checks:
            raise ValueError("at least one check is needed")
        prepared = [self._prepare(ns, identity, limits) for ns, identity, limits in checks]

        async def op(strategies: Strategies) -> RateDecision:
            windows: list[_Window] = []
            for namespace, identity, items in prepared:
                if strategies.standin and namespace in self._strict:
                    items = tuple(scaled(item, self._divisor) for item in items)
                for item in items:
                    stats = await strategies.main.get_window_stats(
                        item, *self._ids(namespace, identity)
                    )
                    windows.append(_Window(namespace, identity, item, stats))
            now = time.time()
            refused = [w for w in windows if w.stats.remaining < cost]
            if refused:
                return self._refuse(refused, now)
            if consume:
                for w in windows:
                    if not await strategies.main.hit(
                        w.item, *self._ids(w.namespace, w.identity), cost=cost
                    ):
                        return self._refuse([w], now)  # lost a race for the last unit
            return self._allow(windows, cost if consume else 0, now)

        return await self._backend.run(op)

    def _prepare(
        self, namespace: str, identity: str, limits: str | Sequence[RateLimitItem]
    ) -> tuple[str, str, tuple[RateLimitItem, ...]]:
        if namespace not in self._namespaces_seen:
            check_namespace(namespace)
            if namespace in _RESERVED_NAMESPACES:
                raise ValueError(f"namespace {namespace!r} is reserved for lock-outs")
            self._namespaces_seen.add(namespace)
        if namespace == IP_NAMESPACE:
            identity = address_bucket(identity)
        check_identity(identity)
        return namespace, identity, as_items(limits)

    def _ids(self, namespace: str, identity: str) -> tuple[str, str, str]:
        return (self._tag, namespace, identity)

    def _allow(self, windows: list[_Window], spent: int, now: float) -> RateDecision:
        tightest = min(windows, key=lambda w: (w.stats.remaining, w.stats.reset_time))
        reset_at = tightest.stats.reset_time
        if reset_at <= now:  # window was empty: it starts with this request
            reset_at = now + tightest.item.get_expiry()
        return RateDecision(
            True, tightest.item.amount, tightest.stats.remaining - spent, reset_at, 0
        )

    def _refuse(self, refused: list[_Window], now: float) -> RateDecision:
        worst = max(refused, key=lambda w: w.stats.reset_time)
        retry_after = seconds_until(worst.stats.reset_time, now)
        for w in refused:
            self._report_refusal(w, now, retry_after)
        return RateDecision(False, worst.item.amount, 0, now + retry_after, retry_after)

    def _report_refusal(self, window: _Window, now: float, retry_after: int) -> None:
        """One `ratelimit_exceeded` event per identity and window, not one per request."""
        key = (window.namespace, window.identity, str(window.item))
        if self._refused_until.get(key, 0.0) > now:
            return
        if len(self._refused_until) >= _MAX_REFUSALS_TRACKED:
            self._refused_until.clear()
        self._refused_until[key] = now + retry_after
        fields: dict[str, object] = {
            "namespace": window.namespace,
            "limit": str(window.item),
            "retryAfter": retry_after,
        }
        if window.namespace in _LOGGABLE_NAMESPACES:
            fields["identity"] = window.identity
        self._log("ratelimit_exceeded", fields)

    # -- authentication lock-outs ------------------------------------------------------------

    async def record_auth_failure(self, ip: str) -> None:
        """Count a failed authentication; lock the address once the failure limit is reached.

        While Redis is down the count is local and the limit divided by `degraded_divisor`:
        with per-process counts an attacker spread over processes would otherwise get more
        guesses, so the local limit is stricter rather than looser.
        """
        bucket = address_bucket(ip)

        async def op(strategies: Strategies) -> bool:
            items = self._auth_items
            if strategies.standin:
                items = tuple(scaled(item, self._divisor) for item in items)
            exhausted = False
            for item in items:
                ids = (_EXACT_TAG, "authfail", bucket)
                counted = await strategies.exact.hit(item, *ids)
                stats = await strategies.exact.get_window_stats(item, *ids)
                exhausted = exhausted or not counted or stats.remaining <= 0
            return exhausted and await self._lock(strategies, bucket)

        if await self._backend.run(op):
            # Also lock in this process's memory: the lock-out survives a later Redis outage.
            self._lock_locally(bucket)
            self._log(
                "auth_lockout",
                {
                    "ip": bucket,
                    "seconds": self._lock_item.get_expiry(),
                    "degraded": self._backend.degraded,
                },
            )

    async def _lock(self, strategies: Strategies, bucket: str) -> bool:
        """Start a lock-out; False if one is already running (it is not extended)."""
        return bool(await strategies.exact.hit(self._lock_item, _EXACT_TAG, "lockout", bucket))

    async def is_locked_out(self, ip: str) -> int:
        """Seconds left of the address's lock-out (0 if none), from local or shared state."""
        bucket = address_bucket(ip)

        async def op(strategies: Strategies) -> int:
            stats = await strategies.exact.get_window_stats(
                self._lock_item, _EXACT_TAG, "lockout", bucket
            )
            return seconds_until(stats.reset_time, time.time()) if stats.remaining <= 0 else 0

        until = self._local_locks.get(bucket)
        if until is not None:
            now = time.time()
            if until > now:
                return seconds_until(until, now)
            del self._local_locks[bucket]
        return await self._backend.run(op)

    def _lock_locally(self, bucket: str) -> None:
        now = time.time()
        if len(self._local_locks) >= _MAX_REFUSALS_TRACKED:
            self._local_locks = {b: t for b, t in self._local_locks.items() if t > now}
        self._local_locks[bucket] = now + self._lock_item.get_expiry()

    # -- geo permissions ---------------------------------------------------------------------

    def check_geo(self, policy: GeoPolicy, account: str, region: str | None) -> bool:
        """Whether `policy` allows `region`; a refusal is reported as `geo_refused`."""
        if policy.allows(region):
            return True
        self._log("geo_refused", {"account": account, "region": region or "unknown"})
        return False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while Redis is configured but unreachable and memory stands in."""
        return self._backend.degraded

    async def healthy(self) -> bool:
        """Whether the configured storage answers (always True for memory only)."""
        return await self._backend.healthy()

    async def aclose(self) -> None:
        await self._backend.aclose()
