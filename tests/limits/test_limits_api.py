"""Rate limits on the in-process API: keys, accounts, addresses, lock-outs, recipients, countries
and the daily cap, with the contract's headers and 429s."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from limits_support import Events, OpenApi

from support import FakeClock

UG = "+256701521269"
UG_2 = "+256772123456"
UG_3 = "+256752987654"
GB = "+447400123456"
PROXY = {"trusted_proxies": "127.0.0.1/32"}


def _assert_limit_headers(response: httpx.Response, limit: int, remaining: int) -> None:
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == str(remaining)
    reset = int(response.headers["X-RateLimit-Reset"])
    assert time.time() <= reset <= time.time() + 61


def _assert_429(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["error"]["code"] == "rate_limit_exceeded"
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    assert body["error"]["retryAfter"] == retry_after
    return retry_after


def _statuses(response: httpx.Response) -> dict[str, tuple[str, str | None]]:
    assert response.status_code == 201, response.text
    return {r["to"]: (r["status"], r.get("errorCode")) for r in response.json()["recipients"]}


# -- per key and per account -------------------------------------------------------------------


async def test_sixth_request_of_a_5_per_minute_key_is_refused(
    open_api: OpenApi, database_url: str | None, events: Events
) -> None:
    async with open_api(database_url) as api:
        key = api.new_key(rate_limit="5/minute")
        for n in range(5):
            response = await api.send(key)
            assert response.status_code == 201, response.text
            _assert_limit_headers(response, 5, 4 - n)
            assert response.headers.get_list("X-RateLimit-Limit") == ["5"]
        refused = await api.send(key)
        _assert_429(refused)
        _assert_limit_headers(refused, 5, 0)
        other = await api.send()  # another key of the same account: its own count
        assert other.status_code == 201
        _assert_limit_headers(other, 20, 19)  # the default 100/minute;20/second
        hits = [f for e, f in events if e == "ratelimit_exceeded"]
        assert [h["namespace"] for h in hits] == ["key"]
        assert key not in repr(events)


async def test_limit_headers_on_every_limited_route(open_api: OpenApi) -> None:
    async with open_api() as api:
        key = api.new_key(rate_limit="50/minute")
        listing = await api.client.get("/api/v1/messages", headers=api.headers(key))
        assert listing.status_code == 200
        _assert_limit_headers(listing, 50, 49)
        missing = await api.client.get("/api/v1/messages/msg_nope", headers=api.headers(key))
        assert missing.status_code == 404
        _assert_limit_headers(missing, 50, 48)
        health = await api.client.get("/healthz")
        assert "X-RateLimit-Limit" not in health.headers


async def test_key_limit_change_applies_without_restart(open_api: OpenApi) -> None:
    async with open_api() as api:
        key = api.new_key(rate_limit="5/minute")
        for _ in range(3):
            assert (await api.send(key)).status_code == 201
        api.set_key_limit(key, "3/minute")
        _assert_429(await api.send(key))
        api.set_key_limit(key, "10/minute")
        raised = await api.send(key)
        assert raised.status_code == 201
        _assert_limit_headers(raised, 10, 6)


async def test_account_limit_counts_all_its_keys(
    open_api: OpenApi, database_url: str | None, clock: FakeClock
) -> None:
    async with open_api(database_url, rate_limit_policy_ttl=30) as api:
        api.set_policy(rateLimit="4/minute")
        first, second = api.new_key(), api.new_key()
        for key in (first, second, first, second):
            assert (await api.send(key)).status_code == 201
        _assert_429(await api.send(first))
        _assert_429(await api.send(second))
        _, stranger = api.new_account("other")
        assert (await api.send(stranger)).status_code == 201
        api.set_policy(rateLimit="6/minute")  # cached for 30 s of the gateway's clock
        _assert_429(await api.send(first))
        clock.advance(seconds=31)
        response = await api.send(first)
        assert response.status_code == 201
        _assert_limit_headers(response, 6, 1)


async def test_refused_by_the_account_spends_nothing_of_the_key(open_api: OpenApi) -> None:
    async with open_api(rate_limit_policy_ttl=0) as api:
        api.set_policy(rateLimit="2/minute")
        key = api.new_key(rate_limit="5/minute")
        for _ in range(2):
            assert (await api.send(key)).status_code == 201
        for _ in range(3):
            _assert_429(await api.send(key))
        api.set_policy(rateLimit="100/minute")
        response = await api.send(key)
        assert response.status_code == 201
        _assert_limit_headers(response, 5, 2)


# -- client addresses and lock-outs -------------------------------------------------------------


async def test_repeated_bad_keys_lock_out_that_address_only(
    open_api: OpenApi, events: Events
) -> None:
    async with open_api(auth_failure_limit="3/minute", lockout_seconds=120, **PROXY) as api:
        bad = "msgine_test_" + "A" * 40
        for _ in range(3):
            response = await api.client.get(
                "/api/v1/messages", headers=api.headers(bad, ip="203.0.113.7")
            )
            assert response.status_code == 401
        locked = await api.send(ip="203.0.113.7")  # even with a good key
        retry_after = _assert_429(locked)
        assert 60 < retry_after <= 120
        assert locked.json()["error"]["details"] == {"reason": "lockout"}
        assert "X-RateLimit-Limit" not in locked.headers
        assert (await api.send(ip="203.0.113.8")).status_code == 201
        assert (await api.send()).status_code == 201  # the proxy itself is not locked out
        assert [f for e, f in events if e == "auth_lockout"] == [
            {"ip": "203.0.113.7", "seconds": 120, "degraded": False}
        ]
        assert bad not in repr(events)
        assert api.key not in repr(events)


async def test_lockout_refuses_before_any_key_lookup(
    open_api: OpenApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_api(auth_failure_limit="1/minute", **PROXY) as api:
        await api.client.get("/api/v1/messages", headers=api.headers("nope", ip="198.51.100.3"))
        from msgine.server.api import _deps

        def no_lookup(*args: Any) -> Any:
            raise AssertionError("the key was looked up")

        monkeypatch.setattr(_deps, "key_digest", no_lookup)
        _assert_429(await api.send(ip="198.51.100.3"))


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(open_api: OpenApi) -> None:
    async with open_api(auth_failure_limit="2/minute") as api:  # no trusted proxies
        for n in range(2):
            bad = api.headers("nope", ip=f"192.0.2.{n}")
            assert (await api.client.get("/api/v1/messages", headers=bad)).status_code == 401
        # Both failures counted for the peer, whatever the header claimed.
        _assert_429(await api.send(ip="192.0.2.99"))


async def test_per_address_limit_applies_before_authentication(open_api: OpenApi) -> None:
    async with open_api(rate_limit_per_ip="3/minute", **PROXY) as api:
        for _ in range(3):
            assert (await api.send(ip="203.0.113.20")).status_code == 201
        _assert_429(
            await api.client.get("/api/v1/messages", headers={"X-Forwarded-For": "203.0.113.20"})
        )
        assert (await api.send(ip="203.0.113.21")).status_code == 201


# -- recipients, countries and the daily cap ----------------------------------------------------


async def test_recipient_over_its_limit_is_rejected_alone(
    open_api: OpenApi, database_url: str | None, events: Events
) -> None:
    async with open_api(database_url, rate_limit_per_recipient="2/hour") as api:
        for _ in range(2):
            assert _statuses(await api.send(to=UG))[UG][1] is None
        mixed = _statuses(await api.send(to=[UG, UG_2]))
        assert mixed[UG] == ("rejected", "recipient_rate_limited")
        assert mixed[UG_2][0] != "rejected"
        _, other_key = api.new_account("other")  # the count is per account
        assert _statuses(await api.send(other_key, to=UG))[UG][1] is None
        assert [f["namespace"] for e, f in events if e == "ratelimit_exceeded"] == ["recipient"]
        assert "701521269" not in repr(events)


async def test_account_recipient_limit_overrides_the_default(open_api: OpenApi) -> None:
    async with open_api() as api:
        api.set_policy(recipientRateLimit="1/hour")
        assert _statuses(await api.send(to=UG))[UG][1] is None
        assert _statuses(await api.send(to=UG))[UG] == ("rejected", "recipient_rate_limited")


async def test_countries_outside_the_allowed_list_are_rejected_alone(
    open_api: OpenApi, database_url: str | None, events: Events
) -> None:
    async with open_api(database_url) as api:
        everywhere = _statuses(await api.send(to=[UG, GB]))  # the default: all countries
        assert everywhere[GB][0] != "rejected"
        account_id, key = api.new_account("narrow")
        api.set_policy(account_id, allowedCountries=["ug"])
        statuses = _statuses(await api.send(key, to=[UG, GB]))
        assert statuses[GB] == ("rejected", "destination_not_allowed")
        assert statuses[UG][0] != "rejected"
        assert [f for e, f in events if e == "geo_refused"] == [
            {"account": account_id, "region": "GB"}
        ]
        assert "7400123456" not in repr(events)


async def test_daily_cap_refuses_the_request_that_would_exceed_it(
    open_api: OpenApi, events: Events
) -> None:
    async with open_api(rate_limit_per_recipient="1/hour") as api:
        api.set_policy(dailyCap=3)
        assert (await api.send(to=[UG, UG_2])).status_code == 201
        retry_after = _assert_429(await api.send(to=[UG_3, GB]))
        assert retry_after > 3600  # a day's window
        # The refused request spent nothing: not the cap, nor its recipients' allowance.
        assert _statuses(await api.send(to=UG_3))[UG_3][1] is None
        _assert_429(await api.send(to=GB))
        assert [f["namespace"] for e, f in events if e == "ratelimit_exceeded"] == ["daily"]


async def test_rejected_recipients_do_not_count_towards_the_daily_cap(open_api: OpenApi) -> None:
    async with open_api(rate_limit_per_recipient="1/hour") as api:
        api.set_policy(dailyCap=2, allowedCountries=["UG"])
        statuses = _statuses(await api.send(to=[UG, GB]))
        assert statuses[GB] == ("rejected", "destination_not_allowed")
        assert _statuses(await api.send(to=[UG, UG_2]))[UG] == (
            "rejected",
            "recipient_rate_limited",
        )
        _assert_429(await api.send(to=UG_3))
