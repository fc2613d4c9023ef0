"""The SDK against a real ``msgine serve`` subprocess (the ``gateway`` fixture)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from msgine import (
    AsyncMsGineClient,
    MsGineAuthenticationError,
    MsGineBadRequestError,
    MsGineClient,
    MsGineConflictError,
    MsGineNotFoundError,
    MsGinePermissionError,
)
from msgine._keyformat import generate_key

pytestmark = pytest.mark.slow
TO = "+256701521269"
TO_2 = "+256701521270"


def test_send_get_and_history(gateway: Any) -> None:
    with MsGineClient(gateway.api_key, base_url=gateway.base_url) as client:
        sent = client.sms.send(f"{TO}, {TO_2}", "Hello from the SDK", from_="MyApp")
        assert sent.id.startswith("msg_")
        assert sent.to == [TO, TO_2]
        assert {r.to for r in sent.recipients} == {TO, TO_2}
        assert sent.created_at is not None
        fetched = client.messages.get(sent.id)
        assert fetched.id == sent.id
        assert fetched.content == "Hello from the SDK"
        page = client.sms.history(page=1, limit=10)
        assert sent.id in [m.id for m in page.messages]
        assert page.total >= 1


def test_retried_send_stores_one_message(gateway: Any) -> None:
    """The first two responses are lost (503) after the gateway stored the message: the
    retries carry the same idempotency key, so the gateway stores and sends one message."""
    upstream = httpx.Client()
    seen_keys: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        forwarded = upstream.send(
            upstream.build_request(
                request.method, request.url, headers=request.headers, content=request.content
            )
        )
        if request.method == "POST":
            seen_keys.append(request.headers["Idempotency-Key"])
            if len(seen_keys) <= 2:
                return httpx.Response(
                    503, json={"error": {"code": "unavailable", "message": "lost"}}
                )
        return httpx.Response(
            forwarded.status_code, headers=forwarded.headers, content=forwarded.content
        )

    transport = httpx.MockTransport(flaky)
    with MsGineClient(
        gateway.api_key, base_url=gateway.base_url, transport=transport, sleep=lambda _: None
    ) as client:
        sent = client.sms.send(TO, "exactly once")
        assert len(seen_keys) == 3
        assert len(set(seen_keys)) == 1
        history = client.sms.history(limit=100)
    upstream.close()
    assert [m.id for m in history.messages if m.content == "exactly once"] == [sent.id]


def test_async_send(gateway: Any) -> None:
    async def main() -> tuple[str, str]:
        async with AsyncMsGineClient(gateway.api_key, base_url=gateway.base_url) as client:
            sent = await client.sms.send([TO], "async hello")
            fetched = await client.messages.get(sent.id)
            return sent.id, fetched.id

    sent_id, fetched_id = asyncio.run(main())
    assert sent_id == fetched_id


def test_errors_map_to_classes(gateway: Any) -> None:
    with MsGineClient(generate_key("test"), base_url=gateway.base_url) as stranger:
        with pytest.raises(MsGineAuthenticationError) as caught:
            stranger.messages.get("msg_x")
        assert caught.value.code == "unauthorized"
        assert caught.value.request_id

    created = json.loads(
        gateway.cli("keys", "create", "--scopes", "messages:read", "--json").stdout
    )
    with MsGineClient(created["key"], base_url=gateway.base_url) as reader:
        with pytest.raises(MsGinePermissionError) as denied:
            reader.sms.send(TO, "not allowed")
        assert denied.value.code == "forbidden"

    with MsGineClient(gateway.api_key, base_url=gateway.base_url) as client:
        with pytest.raises(MsGineNotFoundError):
            client.messages.get("msg_doesnotexist")
        client.sms.send(TO, "first body", idempotency_key="sdk-conflict-1")
        with pytest.raises(MsGineConflictError) as conflict:
            client.sms.send(TO, "another body", idempotency_key="sdk-conflict-1")
        assert conflict.value.code == "idempotency_conflict"
        with pytest.raises(MsGineBadRequestError) as invalid:
            client.sms.send("+447700900123", "reserved range number")  # E.164-shaped, not valid
        assert invalid.value.status_code == 400
        assert invalid.value.code == "invalid_phone_number"
