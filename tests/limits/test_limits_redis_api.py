"""Rate limits shared through real Redis: two gateway processes on one PostgreSQL database,
lock-outs across apps, and the gateway's behaviour while Redis is down."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import redis
from limits_support import Events, OpenApi

from support import MASTER_KEY, Gateway, gateway_env, start_gateway

pytestmark = pytest.mark.redis


def _send(gw: Gateway, key: str) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/messages/sms",
        json={"to": "+256701521269", "message": "Hello"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def test_two_gateways_share_a_key_limit_exactly(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    env = gateway_env(
        tmp_path,
        postgres_url,
        MSGINE_REDIS_URL=redis_url,
        MSGINE_REDIS_KEY_PREFIX=redis_prefix,
        MSGINE_MASTER_KEY=MASTER_KEY,
    )
    first = start_gateway(env, cwd=tmp_path)
    second = start_gateway(env, cwd=tmp_path)
    try:
        created = first.cli("keys", "create", "--rate-limit", "5/minute", "--json")
        key = json.loads(created.stdout)["key"]
        answers = [_send(gw, key) for gw in (first, second, first, second, first)]
        assert [r.status_code for r in answers] == [201] * 5
        assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["4", "3", "2", "1", "0"]
        for gw in (second, first):
            refused = _send(gw, key)
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
        assert _send(second, first.api_key).status_code == 201  # another key: unaffected
    finally:
        second.stop()
        first.stop()


async def test_lockout_in_one_app_holds_in_another(
    open_api: OpenApi, redis_url: str, redis_prefix: str
) -> None:
    shared = {
        "redis_url": redis_url,
        "redis_key_prefix": redis_prefix,
        "trusted_proxies": "127.0.0.1/32",
        "auth_failure_limit": "2/minute",
    }
    async with open_api(**shared) as one, open_api(**shared) as two:
        for api in (one, two):
            bad = api.headers("msgine_test_" + "B" * 40, ip="203.0.113.50")
            assert (await api.client.get("/api/v1/messages", headers=bad)).status_code == 401
        assert (await one.send(ip="203.0.113.50")).status_code == 429
        assert (await two.send(ip="203.0.113.50")).status_code == 429
        assert (await two.send(ip="203.0.113.51")).status_code == 201
        assert not one.app.state.rate_limiter.degraded


async def test_recipient_limit_is_shared_through_redis(
    open_api: OpenApi, redis_url: str, redis_prefix: str
) -> None:
    settings = {
        "redis_url": redis_url,
        "redis_key_prefix": redis_prefix,
        "rate_limit_per_recipient": "1/hour",
    }
    async with open_api(**settings) as api:
        first = await api.send(to=["+256701521269", "+256772123456"])
        assert all(r["status"] != "rejected" for r in first.json()["recipients"])
        again = await api.send(to=["+256701521269"])
        assert again.json()["recipients"][0]["errorCode"] == "recipient_rate_limited"
    client = redis.Redis.from_url(redis_url)
    names = [k.decode() for k in client.scan_iter(match=f"{redis_prefix}*")]
    client.close()
    assert any("/recipient/r_" in name for name in names)
    assert not [n for n in names if "701521269" in n or "772123456" in n]
    assert api.key not in repr(names)


async def test_redis_down_keeps_limits_per_process(open_api: OpenApi, events: Events) -> None:
    async with open_api(redis_url="redis://127.0.0.1:1/0") as api:
        key = api.new_key(rate_limit="3/minute")
        assert [(await api.send(key)).status_code for _ in range(4)] == [201, 201, 201, 429]
        assert api.app.state.rate_limiter.degraded
        assert [e for e, _ in events if e == "ratelimit_storage_degraded"] == [
            "ratelimit_storage_degraded"
        ]
        assert "127.0.0.1:1" not in repr(events)
