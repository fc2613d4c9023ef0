"""The rate-limiting engine: limits per key, account, address and recipient, and lock-outs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from limits import RateLimitItem
from msgine.server.metrics import RATE_LIMIT_REFUSALS

from . import _evaluate
from ._address import address_bucket
from ._backend import Backend, MemoryStores, SecurityLog, Strategies, StrategyName
from ._decision import RateDecision, seconds_until
from ._evaluate import Outcome, Row, Win, specs
from ._geo import GeoPolicy
from ._identity import check_identity, check_namespace
from ._lockout import Lockouts
from ._memory import DEFAULT_MAX_WINDOWS

IP_NAMESPACE = "ip"
# Identities in these namespaces are not personal data and help an operator act on an event.
_LOGGABLE_NAMESPACES = frozenset({"key", "account", IP_NAMESPACE})
_RESERVED_NAMESPACES = frozenset({"authfail", "lockout"})
_STRATEGY_TAGS = {"moving-window": "mw", "sliding-window": "sw", "fixed-window": "fw"}
_MAX_REFUSALS_TRACKED = 10_000
_MAX_PREPARED = 10_000

Check = tuple[str, str, str | Sequence[RateLimitItem]]


def _noop_log(event: str, fields: dict[str, object]) -> None:
    return None


def _locked(seconds: int) -> RateDecision:
    RATE_LIMIT_REFUSALS.labels(limit="lockout").inc()
    return RateDecision(False, 0, 0, time.time() + seconds, seconds, reason="lockout")


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
        max_memory_windows: int = DEFAULT_MAX_WINDOWS,
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
            max_windows=max_memory_windows,
        )
        self._lockouts = Lockouts(auth_failure_limit, lockout_seconds, degraded_divisor)
        self._divisor = degraded_divisor
        self._strict = frozenset(strict_namespaces)
        self._refused_until: dict[tuple[str, str, str], float] = {}
        self._namespaces_seen: set[str] = set()
        self._prepared: dict[tuple[str, str, str], tuple[Win, ...]] = {}
        self._memory_only = None if self._backend.shared else self._backend.local

    # -- ordinary limits -------------------------------------------------------------------

    async def hit(
        self,
        namespace: str,
        identity: str,
        limits: str | Sequence[RateLimitItem],
        *,
        cost: int = 1,
        report: bool = True,
    ) -> RateDecision:
        """Consume `cost` from every limit, or from none if any lacks room.

        `identity` must be opaque: a key id, account id, address, or `opaque_identity()` of a
        recipient number; phone-number-like identities raise ValueError.
        """
        return await self.hit_many([(namespace, identity, limits)], cost=cost, report=report)

    async def hit_many(
        self, checks: Sequence[Check], *, cost: int = 1, report: bool = True
    ) -> RateDecision:
        """Like `hit` over several (namespace, identity, limits): all are consumed or none.

        In memory this is exact. In Redis, all windows are read first and consumed only if
        each has room; each consumption is atomic, so no limit is ever exceeded, and two
        requests racing for the last unit can only make the loser spend one unit of the limits
        it passed. `report=False` saves Redis the first read when the caller needs only the
        verdict, not the room left (a refused request may then spend units of the limits it
        passed); allowed decisions then report the amount minus `cost` as `remaining`.
        """
        return await self._evaluate(self._windows(checks, cost), cost, True, report)

    async def test(
        self, namespace: str, identity: str, limits: str | Sequence[RateLimitItem], *, cost: int = 1
    ) -> RateDecision:
        """The decision a hit of `cost` would get, without consuming anything."""
        return await self._evaluate(
            self._windows([(namespace, identity, limits)], cost), cost, False, True
        )

    async def admit_address(self, ip: str, limits: str | Sequence[RateLimitItem]) -> RateDecision:
        """Before authentication: refuse a locked-out address, else count the request against
        the per-address limit. One storage round in Redis (both run concurrently)."""
        bucket = address_bucket(ip)
        left = self._lockouts.local(bucket, time.time())
        if left:
            return _locked(left)
        windows = self._windows([(IP_NAMESPACE, ip, limits)], 1)

        def in_memory(stores: MemoryStores) -> RateDecision:
            left = self._lockouts.in_memory(stores, bucket)
            if left:
                return _locked(left)
            return self._decide(_evaluate.in_memory(stores, windows, 1, True, *self._scaling))

        if self._memory_only is not None:
            return in_memory(self._memory_only)

        async def in_redis(strategies: Strategies) -> RateDecision:
            left, outcome = await asyncio.gather(
                self._lockouts.in_redis(strategies, bucket),
                _evaluate.in_redis(strategies, self._tag, windows, 1, True, False),
            )
            return _locked(left) if left else self._decide(outcome)

        return await self._backend.run(in_memory, in_redis)

    async def _evaluate(
        self, windows: list[Win], cost: int, consume: bool, report: bool
    ) -> RateDecision:
        if self._memory_only is not None:  # the common case, without closures or awaits
            outcome = _evaluate.in_memory(
                self._memory_only, windows, cost, consume, self._strict, self._divisor
            )
            return self._decide(outcome, consume, cost)

        def in_memory(stores: MemoryStores) -> RateDecision:
            return self._decide(
                _evaluate.in_memory(stores, windows, cost, consume, *self._scaling), consume, cost
            )

        async def in_redis(strategies: Strategies) -> RateDecision:
            outcome = await _evaluate.in_redis(
                strategies, self._tag, windows, cost, consume, report
            )
            return self._decide(outcome, consume, cost)

        return await self._backend.run(in_memory, in_redis)

    @property
    def _scaling(self) -> tuple[frozenset[str], int]:
        return self._strict, self._divisor

    def _windows(self, checks: Sequence[Check], cost: int) -> list[Win]:
        if cost < 1:
            raise ValueError("cost must be at least 1")
        if not checks:
            raise ValueError("at least one check is needed")
        windows: list[Win] = []
        for check in checks:
            if isinstance(check[2], str):
                # Validated windows of recent (namespace, identity, limit string) triples:
                # keys, accounts and addresses come back on every request.
                cached = self._prepared.get(check)  # type: ignore[arg-type]
                if cached is None:
                    cached = self._prepare(*check)
                    if len(self._prepared) >= _MAX_PREPARED:
                        self._prepared.clear()
                    self._prepared[check] = cached  # type: ignore[index]
                windows.extend(cached)
            else:
                windows.extend(self._prepare(*check))
        return windows

    def _prepare(
        self, namespace: str, identity: str, limits: str | Sequence[RateLimitItem]
    ) -> tuple[Win, ...]:
        if namespace not in self._namespaces_seen:
            check_namespace(namespace)
            if namespace in _RESERVED_NAMESPACES:
                raise ValueError(f"namespace {namespace!r} is reserved for lock-outs")
            self._namespaces_seen.add(namespace)
        if namespace == IP_NAMESPACE:
            identity = address_bucket(identity)
        check_identity(identity)
        return tuple(Win(namespace, identity, spec) for spec in specs(limits))

    def _decide(self, outcome: Outcome, consume: bool = True, cost: int = 1) -> RateDecision:
        now = outcome.now
        if not outcome.allowed:
            return self._refuse(outcome.rows, now)
        rows = outcome.rows
        tightest = rows[0] if len(rows) == 1 else min(rows, key=lambda r: (r.remaining, r.reset_at))
        reset_at = tightest.reset_at
        if reset_at <= now:  # the window was empty: it starts with this request
            reset_at = now + tightest.win.expiry
        spent = cost if consume else 0
        return RateDecision(True, tightest.amount, tightest.remaining - spent, reset_at, 0)

    def _refuse(self, refused: list[Row], now: float) -> RateDecision:
        worst = max(refused, key=lambda r: r.reset_at)
        # One refusal, named after the limit that holds the caller back longest.
        RATE_LIMIT_REFUSALS.labels(limit=worst.win.namespace).inc()
        retry_after = seconds_until(worst.reset_at, now)
        for row in refused:
            self._report_refusal(row, now, retry_after)
        return RateDecision(False, worst.amount, 0, now + retry_after, retry_after)

    def _report_refusal(self, row: Row, now: float, retry_after: int) -> None:
        """One `ratelimit_exceeded` event per identity and window, not one per request."""
        win = row.win
        key = (win.namespace, win.identity, str(win.key[2]))
        if self._refused_until.get(key, 0.0) > now:
            return
        if len(self._refused_until) >= _MAX_REFUSALS_TRACKED:
            self._refused_until.clear()
        self._refused_until[key] = now + retry_after
        fields: dict[str, object] = {
            "namespace": win.namespace,
            "limit": f"{row.amount} per {win.item.multiples} {win.item.GRANULARITY.name}",
            "retryAfter": retry_after,
        }
        if win.namespace in _LOGGABLE_NAMESPACES:
            fields["identity"] = win.identity
        self._log("ratelimit_exceeded", fields)

    # -- authentication lock-outs ------------------------------------------------------------

    async def record_auth_failure(self, ip: str) -> None:
        """Count a failed authentication; lock the address once the failure limit is reached.

        While Redis is down the count is local and the limit divided by `degraded_divisor`:
        with per-process counts an attacker spread over processes would otherwise get more
        guesses, so the local limit is stricter rather than looser.
        """
        bucket = address_bucket(ip)
        lockouts = self._lockouts

        def in_memory(stores: MemoryStores) -> bool:
            return lockouts.fail_in_memory(stores, bucket)

        async def in_redis(strategies: Strategies) -> bool:
            return await lockouts.fail_in_redis(strategies, bucket)

        if await self._backend.run(in_memory, in_redis):
            # Also lock in this process's memory: the lock-out survives a later Redis outage.
            lockouts.lock_locally(bucket)
            self._log(
                "auth_lockout",
                {"ip": bucket, "seconds": lockouts.seconds, "degraded": self._backend.degraded},
            )

    async def is_locked_out(self, ip: str) -> int:
        """Seconds left of the address's lock-out (0 if none), from local or shared state."""
        bucket = address_bucket(ip)
        left = self._lockouts.local(bucket, time.time())
        if left:
            return left

        def in_memory(stores: MemoryStores) -> int:
            return self._lockouts.in_memory(stores, bucket)

        async def in_redis(strategies: Strategies) -> int:
            return await self._lockouts.in_redis(strategies, bucket)

        return await self._backend.run(in_memory, in_redis)

    # -- geo permissions ---------------------------------------------------------------------

    def check_geo(self, policy: GeoPolicy, account: str, region: str | None) -> bool:
        """Whether `policy` allows `region`; a refusal is reported as `geo_refused`."""
        if policy.allows(region):
            return True
        RATE_LIMIT_REFUSALS.labels(limit="destination").inc()
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
