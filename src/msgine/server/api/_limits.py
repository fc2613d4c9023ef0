"""Rate limits on the API: the engine (`msgine.server.ratelimit`) wired into the app's hooks.

Per request, in order:
1. before the key lookup: the client address's lock-out and per-address limit (429);
2. after authentication: a 401 counts towards the address's lock-out; a success is counted
   against the key's and the account's limits together (429), whose room left becomes the
   `X-RateLimit-*` headers of the response, whatever the route;
3. before a send is stored: destination countries and the per-recipient limit reject single
   recipients; the account's daily cap refuses the whole request (429).
See docs/rate-limits.md for the choices and their reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from msgine.server.accounts import AccountPolicy, Ceilings, policy_of
from msgine.server.api._deps import client_ip
from msgine.server.config import Settings
from msgine.server.errors import RateLimitRefusal, Unauthorized
from msgine.server.keys import Principal
from msgine.server.logging import security_event
from msgine.server.messages import SendCommand, region_of
from msgine.server.ratelimit import (
    DESTINATION_NOT_ALLOWED,
    RECIPIENT_RATE_LIMITED,
    UNKNOWN_ADDRESS,
    GeoPolicy,
    RateDecision,
    RateLimiter,
    client_address,
    exceeded_windows,
    parse_limits,
)
from msgine.server.runtime import Runtime

_STATE_HEADERS = "rate_limit_headers"
_STATE_ADDRESS = "client_address"


def install(app: FastAPI) -> None:
    """Register the rate-limit hooks on ``app`` (see app.state.*_hooks and send_prechecks)."""
    runtime: Runtime = app.state.runtime
    settings = runtime.settings
    limiter = RateLimiter(
        settings.redis_url.get_secret_value() if settings.redis_url else None,
        strategy=settings.rate_limit_strategy,
        key_prefix=settings.redis_key_prefix,
        security_log=_security_log,
        auth_failure_limit=settings.auth_failure_limit,
        lockout_seconds=settings.lockout_seconds,
        redis_timeout=settings.rate_limit_redis_timeout,
        max_memory_windows=settings.rate_limit_memory_windows,
    )
    limits = ApiLimits(runtime, limiter)
    app.state.rate_limiter = limiter
    app.state.client_ip_resolver = address_resolver(settings.trusted_proxy_list)
    app.state.pre_auth_hooks.append(limits.before_auth)
    app.state.auth_hooks.append(limits.after_auth)
    app.state.send_prechecks.append(limits.before_send)
    app.state.shutdown_hooks.append(limiter.aclose)
    app.add_middleware(RateLimitHeadersMiddleware)


def _security_log(event: str, fields: dict[str, object]) -> None:
    security_event(event, **fields)


def address_resolver(trusted_proxies: Sequence[str]) -> Callable[[Request], str | None]:
    """`app.state.client_ip_resolver`: the peer, or behind trusted proxies the first address
    in X-Forwarded-For (from the right) that is not a proxy. Resolved once per request."""
    proxies = tuple(trusted_proxies)

    def resolve(request: Request) -> str | None:
        if not proxies:
            return request.client.host if request.client else None
        state = request.scope.setdefault("state", {})
        address: str | None = state.get(_STATE_ADDRESS)
        if address is None:
            peer = request.client.host if request.client else None
            # Every X-Forwarded-For line, in order: a proxy may add its own line after one the
            # client sent, and reading only the first would let the client pick its address.
            forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
            address = client_address(peer, forwarded, proxies)
            state[_STATE_ADDRESS] = address
        return None if address == UNKNOWN_ADDRESS else address

    return resolve


@dataclass(frozen=True)
class AccountLimits:
    """An account's rate-limit settings, validated, with the gateway's defaults filled in."""

    per_account: str
    per_recipient: str
    daily: str | None
    geo: GeoPolicy | None


@lru_cache(maxsize=4096)
def _usable(text: str | None, default: str) -> str:
    """`text` if it is a valid limit, else `default`: a bad stored value must not lift limits
    nor break requests. Cached, so an invalid value is reported once per process."""
    if not text:
        return default
    try:
        parse_limits(text)
    except ValueError:
        security_event("ratelimit_config_invalid", fallback="default")
        return default
    return text


@lru_cache(maxsize=4096)
def _within(text: str | None, ceiling: str) -> str:
    """An account's own limit, or the operator's ``ceiling`` where it is unusable or looser
    (a value stored before ceilings were enforced must not lift them either)."""
    usable = _usable(text, ceiling)
    if usable != ceiling and exceeded_windows(usable, ceiling):
        security_event("ratelimit_above_ceiling", fallback="operator")
        return ceiling
    return usable


def account_limits(policy: AccountPolicy, settings: Settings) -> AccountLimits:
    # AccountPolicy already holds upper-case ISO 3166 codes (validated when stored).
    countries = policy.allowed_countries
    geo = GeoPolicy(frozenset(countries)) if countries is not None else None
    daily = Ceilings.of(settings).daily_cap(policy)
    return AccountLimits(
        per_account=_within(policy.rate_limit, settings.rate_limit_per_account),
        per_recipient=_within(policy.recipient_rate_limit, settings.rate_limit_per_recipient),
        daily=f"{daily}/day" if daily else None,
        geo=geo,
    )


def _scoped(identity: str, mode: str) -> str:
    """Test traffic counts apart from live (its own account, recipient and daily counts), so
    a test key cannot use up what live traffic needs."""
    return identity if mode == "live" else f"{identity}:test"


class ApiLimits:
    """The hooks, sharing one limiter and a short-lived cache of account settings.

    Account settings are cached for `rate_limit_policy_ttl` seconds (runtime clock): reading
    them from the database on every request would cost more than all the checks together.
    Key settings need no cache: the key row is read on every request anyway.
    """

    def __init__(self, runtime: Runtime, limiter: RateLimiter) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.limiter = limiter
        self._accounts: dict[str, tuple[float, AccountLimits]] = {}

    async def account(self, account_id: str) -> AccountLimits:
        now = self.runtime.now().timestamp()
        cached = self._accounts.get(account_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        policy = await self.runtime.db.aread(lambda conn: policy_of(conn, account_id))
        limits = account_limits(policy, self.settings)
        if len(self._accounts) >= 10_000:
            self._accounts.clear()
        self._accounts[account_id] = (now + self.settings.rate_limit_policy_ttl, limits)
        return limits

    async def before_auth(self, request: Request) -> None:
        address = client_ip(request) or UNKNOWN_ADDRESS
        decision = await self.limiter.admit_address(address, self.settings.rate_limit_per_ip)
        if not decision.allowed:
            raise decision.error()

    async def after_auth(
        self, request: Request, principal: Principal | None, exc: Exception | None
    ) -> None:
        if principal is None or exc is not None:
            if isinstance(exc, Unauthorized):
                await self.limiter.record_auth_failure(client_ip(request) or UNKNOWN_ADDRESS)
            return
        decision = await self.limiter.hit_many(await self._key_and_account(principal))
        if not decision.allowed:
            raise decision.error()
        setattr(request.state, _STATE_HEADERS, decision.headers())

    async def _key_and_account(self, principal: Principal) -> list[tuple[str, str, str]]:
        account = await self.account(principal.account_id)
        per_key = _usable(principal.rate_limit, self.settings.rate_limit_per_key)
        return [
            ("key", principal.key_id, per_key),
            ("account", _scoped(principal.account_id, principal.mode), account.per_account),
        ]

    async def _count_recipients(
        self, request: Request, principal: Principal, recipients: int
    ) -> None:
        """A send costs one unit of the key's and account's limits per recipient: the request
        itself paid one when it was authenticated, the rest are paid here (429 if they do not
        fit, and then nothing else is spent)."""
        if recipients <= 1:
            return
        checks = await self._key_and_account(principal)
        decision = await self.limiter.hit_many(checks, cost=recipients - 1)
        if not decision.allowed:
            error = decision.error()
            if recipients > decision.limit:  # no wait will do: say so, and how many would
                error.details.update(
                    reason="too_many_recipients", recipients=recipients, limit=decision.limit
                )
            raise error
        setattr(request.state, _STATE_HEADERS, decision.headers())

    async def before_send(
        self, request: Request, principal: Principal, cmd: SendCommand
    ) -> dict[str, str]:
        """Recipients to reject ({number: error code}); raises 429 for the daily cap.

        The cap counts the recipients that will be sent. With a cap, the recipients' limits
        are read first, the cap consumed, and only then the recipients' limits: a request the
        cap refuses spends nothing. Without a cap, one hit per recipient does it all.
        """
        account_id, mode = principal.account_id, principal.mode
        account = await self.account(account_id)
        numbers = list(dict.fromkeys(cmd.to))
        await self._count_recipients(request, principal, len(numbers))
        rejected = self._outside_countries(account, account_id, numbers)
        candidates = [n for n in numbers if n not in rejected]
        identities = {n: _scoped(self._identity(account_id, n), mode) for n in candidates}
        if account.daily and candidates:
            over = await self._over_recipient_limit(account, identities, candidates, consume=False)
            rejected.update(over)
            candidates = [n for n in candidates if n not in over]
            await self._within_daily_cap(_scoped(account_id, mode), account.daily, len(candidates))
        rejected.update(await self._over_recipient_limit(account, identities, candidates))
        return rejected

    async def _over_recipient_limit(
        self,
        account: AccountLimits,
        identities: dict[str, str],
        numbers: list[str],
        *,
        consume: bool = True,
    ) -> dict[str, str]:
        over = {}
        for number in numbers:
            identity = identities[number]
            if consume:
                decision = await self.limiter.hit(
                    "recipient", identity, account.per_recipient, report=False
                )
            else:
                decision = await self.limiter.test("recipient", identity, account.per_recipient)
            if not decision.allowed:
                over[number] = RECIPIENT_RATE_LIMITED
        return over

    async def _within_daily_cap(self, identity: str, daily: str, count: int) -> None:
        if count:
            decision = await self.limiter.hit("daily", identity, daily, cost=count, report=False)
            if not decision.allowed:
                raise daily_cap_error(decision)

    def _identity(self, account_id: str, number: str) -> str:
        # The blind index is a keyed, per-account HMAC: no number reaches the storage.
        return "r_" + self.runtime.vault.blind_index(account_id, number)

    def _outside_countries(
        self, account: AccountLimits, account_id: str, numbers: list[str]
    ) -> dict[str, str]:
        if account.geo is None:
            return {}
        return {
            n: DESTINATION_NOT_ALLOWED
            for n in numbers
            if not self.limiter.check_geo(account.geo, account_id, region_of(n))
        }


def daily_cap_error(decision: RateDecision) -> RateLimitRefusal:
    """429 ``rate_limit_exceeded`` saying it is the account's daily cap (``details.reason``)."""
    error = decision.error()
    return RateLimitRefusal(
        f"This account's daily cap of {decision.limit} messages is reached; "
        f"retry in {decision.retry_after} s.",
        retry_after=decision.retry_after,
        headers=error.headers,
        details={**error.details, "reason": "daily_cap", "dailyCap": decision.limit},
    )


class RateLimitHeadersMiddleware:
    """Adds the request's `X-RateLimit-*` headers (set after authentication) to its response,
    whatever the route returns, unless the response already has its own. Plain ASGI: no task
    or body copy per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                limits = scope.get("state", {}).get(_STATE_HEADERS)
                if limits:
                    message["headers"] = _merged(message.get("headers", []), limits)
            await send(message)

        await self.app(scope, receive, send_with_limits)


def _merged(
    headers: list[tuple[bytes, bytes]], limits: dict[str, str]
) -> list[tuple[bytes, bytes]]:
    if any(name.lower() == b"x-ratelimit-limit" for name, _ in headers):
        return headers
    extra = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in limits.items()
    ]
    return [*headers, *extra]
