"""Rate-limiting engine with memory storage: limits, lock-outs, addresses, geo, events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from msgine.server.errors import RateLimitExceeded
from msgine.server.ratelimit import (
    GeoPolicy,
    RateDecision,
    RateLimiter,
    RateLimitPolicy,
    client_address,
    combine,
    opaque_identity,
    parse_limits,
)

Events = list[tuple[str, dict[str, object]]]


@pytest.fixture
def events() -> Events:
    return []


@pytest.fixture
async def limiter(events: Events) -> AsyncIterator[RateLimiter]:
    rl = RateLimiter(
        security_log=lambda name, fields: events.append((name, fields)),
        auth_failure_limit="3/minute",
        lockout_seconds=60,
    )
    yield rl
    await rl.aclose()


# -- parsing ---------------------------------------------------------------------------------


def test_parse_limits_accepts_the_default() -> None:
    items = parse_limits("100/minute;20/second")
    assert [(i.amount, i.GRANULARITY.name) for i in items] == [(100, "minute"), (20, "second")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "non-empty"),
        ("lots", "invalid rate limit"),
        ("10/fortnight", "invalid rate limit"),
        ("0/minute", "at least 1"),
        ("5/minute;10/minute", "same window"),
    ],
)
def test_parse_limits_rejects_bad_config(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_limits(text)


def test_policy_validates_every_limit() -> None:
    assert RateLimitPolicy().per_key == "100/minute;20/second"
    assert RateLimitPolicy(daily_cap=500).daily == "500/day"
    with pytest.raises(ValueError, match="invalid rate limit"):
        RateLimitPolicy(per_recipient="ten an hour")
    with pytest.raises(ValueError, match="daily_cap"):
        RateLimitPolicy(daily_cap=0)
    custom = RateLimitPolicy().with_overrides(per_account="50/minute", daily_cap=None)
    assert custom.per_account == "50/minute"
    assert custom.daily is None


# -- limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window", "fixed-window"])
async def test_sixth_request_of_five_per_minute_is_refused(strategy: str) -> None:
    rl = RateLimiter(strategy=strategy)  # type: ignore[arg-type]
    try:
        decisions = [await rl.hit("key", "key_a", "5/minute") for _ in range(6)]
        assert [d.allowed for d in decisions] == [True] * 5 + [False]
        assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
        refused = decisions[5]
        assert refused.retry_after >= 1
        assert refused.limit == 5
        headers = refused.headers()
        assert headers["X-RateLimit-Limit"] == "5"
        assert headers["X-RateLimit-Remaining"] == "0"
        assert int(headers["X-RateLimit-Reset"]) >= int(time.time())
        assert int(headers["Retry-After"]) >= 1
        assert "Retry-After" not in decisions[0].headers()
        other = await rl.hit("key", "key_b", "5/minute")
        assert other.allowed
        assert other.remaining == 4
    finally:
        await rl.aclose()


async def test_tightest_limit_is_reported(limiter: RateLimiter) -> None:
    decisions = [await limiter.hit("key", "k", "10/hour;3/minute") for _ in range(4)]
    assert decisions[0].limit == 3
    assert decisions[0].remaining == 2
    assert not decisions[3].allowed
    assert decisions[3].limit == 3


async def test_refused_request_consumes_from_no_limit(limiter: RateLimiter) -> None:
    for _ in range(2):
        assert (await limiter.hit("account", "acc", "2/minute")).allowed
    refused = await limiter.hit_many([("key", "k", "5/minute"), ("account", "acc", "2/minute")])
    assert not refused.allowed
    assert (await limiter.test("key", "k", "5/minute")).remaining == 5


async def test_test_does_not_consume(limiter: RateLimiter) -> None:
    for _ in range(3):
        assert (await limiter.test("key", "k", "1/minute")).allowed
    assert (await limiter.hit("key", "k", "1/minute")).allowed
    assert not (await limiter.test("key", "k", "1/minute")).allowed


async def test_cost_counts_several_units(limiter: RateLimiter) -> None:
    assert (await limiter.hit("daily", "acc", "5/day", cost=3)).remaining == 2
    assert not (await limiter.hit("daily", "acc", "5/day", cost=3)).allowed
    assert (await limiter.hit("daily", "acc", "5/day", cost=2)).allowed


async def test_changed_limit_applies_to_the_existing_count(limiter: RateLimiter) -> None:
    for _ in range(5):
        assert (await limiter.hit("key", "k", "10/minute")).allowed
    assert not (await limiter.hit("key", "k", "5/minute")).allowed
    raised = await limiter.hit("key", "k", "20/minute")
    assert raised.allowed
    assert raised.remaining == 14


async def test_window_expiry_frees_the_limit(limiter: RateLimiter) -> None:
    assert (await limiter.hit("key", "k", "1/second")).allowed
    refused = await limiter.hit("key", "k", "1/second")
    assert not refused.allowed
    await asyncio.sleep(
        1.05
    )  # the shortest window `limits` offers; no clock injection in its storages
    assert (await limiter.hit("key", "k", "1/second")).allowed


async def test_ipv6_addresses_share_their_64(limiter: RateLimiter) -> None:
    assert (await limiter.hit("ip", "2001:db8:1:2::1", "1/minute")).allowed
    assert not (await limiter.hit("ip", "2001:db8:1:2::ffff", "1/minute")).allowed
    assert (await limiter.hit("ip", "2001:db8:1:3::1", "1/minute")).allowed


# -- identities and events -------------------------------------------------------------------


@pytest.mark.parametrize("number", ["+256701521269", "256701521269", "+44 (0) 7400-123456"])
async def test_phone_numbers_are_refused_as_identities(limiter: RateLimiter, number: str) -> None:
    with pytest.raises(ValueError, match="opaque") as caught:
        await limiter.hit("recipient", number, "10/hour")
    assert number not in str(caught.value)


def test_opaque_identity_is_keyed_and_stable() -> None:
    number = "+256701521269"
    one = opaque_identity(number, b"k" * 32)
    assert one == opaque_identity(number, b"k" * 32)
    assert one != opaque_identity(number, b"j" * 32)
    assert "701521269" not in one
    with pytest.raises(ValueError, match="16 bytes"):
        opaque_identity(number, b"short")


async def test_bad_namespaces_are_refused(limiter: RateLimiter) -> None:
    for namespace in ("Key", "a/b", "", "lockout", "authfail"):
        with pytest.raises(ValueError, match="namespace"):
            await limiter.hit(namespace, "x", "1/minute")


async def test_limit_hit_event_once_per_window_without_recipient(
    limiter: RateLimiter, events: Events
) -> None:
    recipient = opaque_identity("+256701521269", b"k" * 32)
    for _ in range(5):
        await limiter.hit("recipient", recipient, "1/hour")
    hits = [fields for name, fields in events if name == "ratelimit_exceeded"]
    assert len(hits) == 1
    assert hits[0]["namespace"] == "recipient"
    assert "identity" not in hits[0]
    assert recipient not in repr(events)
    for _ in range(3):
        await limiter.hit("key", "key_1", "1/hour")
    key_hits = [f for n, f in events if n == "ratelimit_exceeded" and f["namespace"] == "key"]
    assert len(key_hits) == 1
    assert key_hits[0]["identity"] == "key_1"
    assert key_hits[0]["limit"] == "1 per 1 hour"


# -- lock-outs -------------------------------------------------------------------------------


async def test_lockout_after_repeated_failures(limiter: RateLimiter, events: Events) -> None:
    for _ in range(2):
        await limiter.record_auth_failure("203.0.113.7")
    assert await limiter.is_locked_out("203.0.113.7") == 0
    await limiter.record_auth_failure("203.0.113.7")
    seconds = await limiter.is_locked_out("203.0.113.7")
    assert 1 <= seconds <= 60
    assert await limiter.is_locked_out("203.0.113.8") == 0
    lockouts = [fields for name, fields in events if name == "auth_lockout"]
    assert lockouts == [{"ip": "203.0.113.7", "seconds": 60, "degraded": False}]


async def test_lockout_expires() -> None:
    rl = RateLimiter(auth_failure_limit="1/minute", lockout_seconds=1)
    try:
        await rl.record_auth_failure("198.51.100.1")
        assert await rl.is_locked_out("198.51.100.1") == 1
        await asyncio.sleep(1.05)
        assert await rl.is_locked_out("198.51.100.1") == 0
    finally:
        await rl.aclose()


async def test_lockout_covers_the_ipv6_64(limiter: RateLimiter) -> None:
    for suffix in ("1", "2", "3"):
        await limiter.record_auth_failure(f"2001:db8:5:6::{suffix}")
    assert await limiter.is_locked_out("2001:db8:5:6::abcd") > 0
    assert await limiter.is_locked_out("2001:db8:5:7::1") == 0


async def test_memory_only_limiter_is_healthy(limiter: RateLimiter) -> None:
    assert await limiter.healthy()
    assert not limiter.degraded


# -- client address --------------------------------------------------------------------------

PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48"]


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("198.51.100.9", "1.2.3.4", "198.51.100.9"),  # untrusted peer: its header is ignored
        ("10.0.0.2", "203.0.113.5", "203.0.113.5"),
        ("10.0.0.2", "1.1.1.1, 203.0.113.5, 10.0.0.3", "203.0.113.5"),  # spoofed left entry
        ("10.0.0.2", "203.0.113.5, junk, 10.0.0.3", "203.0.113.5"),  # malformed skipped
        ("10.0.0.2", "203.0.113.5:4711", "203.0.113.5"),
        ("10.0.0.2", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.2", "10.0.0.9, 10.0.0.3", "10.0.0.9"),  # all trusted: the farthest one
        ("10.0.0.2", None, "10.0.0.2"),
        ("10.0.0.2", "not-an-ip", "10.0.0.2"),
        ("::ffff:198.51.100.9", None, "198.51.100.9"),
        ("2001:db8:ffff::1", "2001:db8:1::5", "2001:db8:1::5"),
        (None, "203.0.113.5", "unknown"),
    ],
)
def test_client_address(peer: str | None, xff: str | None, expected: str) -> None:
    assert client_address(peer, xff, PROXIES) == expected


def test_client_address_without_trusted_proxies_uses_the_peer() -> None:
    assert client_address("10.0.0.2", "203.0.113.5", []) == "10.0.0.2"


def test_client_address_rejects_a_bad_proxy_setting() -> None:
    with pytest.raises(ValueError, match="CIDR"):
        client_address("10.0.0.2", None, ["10.0.0.0/33"])


# -- geo -------------------------------------------------------------------------------------


def test_geo_policy() -> None:
    everywhere = GeoPolicy()
    assert everywhere.allows("UG")
    assert everywhere.allows(None)
    east_africa = GeoPolicy.parse("ug, KE,TZ")
    assert east_africa.allowed_countries == frozenset({"UG", "KE", "TZ"})
    assert east_africa.allows("UG")
    assert east_africa.allows("ke")
    assert not east_africa.allows("GB")
    assert not east_africa.allows(None)
    assert not east_africa.allows("001")
    assert GeoPolicy.parse("*").allowed_countries is None
    with pytest.raises(ValueError, match="alpha-2"):
        GeoPolicy.parse("UGA")


async def test_geo_refusal_is_a_security_event(limiter: RateLimiter, events: Events) -> None:
    policy = GeoPolicy.parse("UG")
    assert limiter.check_geo(policy, "acc_1", "UG")
    assert not limiter.check_geo(policy, "acc_1", "GB")
    assert events == [("geo_refused", {"account": "acc_1", "region": "GB"})]


# -- decisions -------------------------------------------------------------------------------


def test_decision_error_and_combine() -> None:
    ok = RateDecision(True, 100, 40, 1000.0, 0)
    tight = RateDecision(True, 20, 3, 990.0, 0)
    refused = RateDecision(False, 10, 0, 1005.2, 7)
    assert combine([ok, tight]) is tight
    assert combine([ok, refused, tight]) is refused
    error = refused.error()
    assert isinstance(error, RateLimitExceeded)
    assert error.retry_after == 7
    assert error.status == 429
    assert refused.headers()["X-RateLimit-Reset"] == "1006"
    with pytest.raises(ValueError):
        combine([])


# -- in-process counters ---------------------------------------------------------------------


def test_memory_counters_drop_idle_windows() -> None:
    from msgine.server.ratelimit._memory import MemoryWindows

    store = MemoryWindows("moving-window")
    now = 1_000_000.0
    store.add([("recipient", f"h_{n}", 60) for n in range(100)], 1, now)
    assert len(store) == 100
    store.add([("recipient", "h_late", 60)], 1, now + 61 + 60)  # past the sweep interval
    assert len(store) == 1


@pytest.mark.parametrize("strategy", ["sliding-window", "fixed-window"])
def test_counter_strategies_free_room_after_the_window(strategy: str) -> None:
    from msgine.server.ratelimit._memory import MemoryWindows

    store = MemoryWindows(strategy)
    key = ("key", "k", 60)
    start = 6_000_000.0  # a multiple of 60: aligned sliding windows start here
    store.add([key], 3, start)
    assert store.state(key, start + 1)[0] == 3
    used_later, _ = store.state(key, start + 90)
    expected = 1 if strategy == "sliding-window" else 0  # half the previous window still counts
    assert used_later == expected
    assert store.state(key, start + 200)[0] == 0


async def test_admit_address_refuses_a_locked_out_address(limiter: RateLimiter) -> None:
    for _ in range(3):
        await limiter.record_auth_failure("203.0.113.30")
    locked = await limiter.admit_address("203.0.113.30", "100/minute")
    assert not locked.allowed
    assert locked.reason == "lockout"
    assert locked.headers() == {"Retry-After": str(locked.retry_after)}
    assert locked.error().details == {"reason": "lockout"}
    assert (await limiter.admit_address("203.0.113.31", "100/minute")).allowed
    limited = [(await limiter.admit_address("203.0.113.32", "2/minute")).allowed for _ in range(3)]
    assert limited == [True, True, False]


async def test_cost_in_a_moving_window_frees_together(limiter: RateLimiter) -> None:
    assert (await limiter.hit("daily", "acc", "5/second", cost=4)).remaining == 1
    assert not (await limiter.hit("daily", "acc", "5/second", cost=2)).allowed
    await asyncio.sleep(1.05)
    assert (await limiter.hit("daily", "acc", "5/second", cost=5)).allowed
