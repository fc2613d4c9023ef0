"""Client behaviour against a real HTTP server on 127.0.0.1 (retries, errors, configuration)."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import ThreadingHTTPServer

import httpx
import pytest
import trustme
from sdk_helpers import Reply, ScriptedServer, error_json, message_json

import msgine
from msgine import (
    AsyncMsGineClient,
    MsGineAuthenticationError,
    MsGineBadRequestError,
    MsGineClient,
    MsGineConfigurationError,
    MsGineConflictError,
    MsGineConnectionError,
    MsGineNotFoundError,
    MsGinePermissionError,
    MsGineRateLimitError,
    MsGineServerError,
    MsGineTimeoutError,
)
from msgine._keyformat import generate_key


def client_for(
    server: ScriptedServer, api_key: str, delays: list[float] | None = None, **kw: object
) -> MsGineClient:
    sink = delays if delays is not None else []
    return MsGineClient(api_key, base_url=server.base_url, sleep=sink.append, **kw)  # type: ignore[arg-type]


def test_503_twice_then_201_three_attempts_one_idempotency_key(
    server: ScriptedServer, api_key: str
) -> None:
    server.script(
        Reply(503, error_json("unavailable")),
        Reply(503, error_json("unavailable")),
        Reply(201, message_json()),
    )
    delays: list[float] = []
    with client_for(server, api_key, delays) as client:
        message = client.sms.send("+256701521269", "Hello", from_="MyApp")
    assert message.id == "msg_1"
    assert [s.method for s in server.seen] == ["POST"] * 3
    keys = {s.headers["idempotency-key"] for s in server.seen}
    assert len(keys) == 1
    assert next(iter(keys))
    assert len({s.body for s in server.seen}) == 1
    assert len(delays) == 2
    assert all(0 <= d <= 8 for d in delays)


def test_each_send_gets_a_new_key_and_an_explicit_key_is_used(
    server: ScriptedServer, api_key: str
) -> None:
    server.script(Reply(201, message_json()))
    with client_for(server, api_key) as client:
        client.sms.send("+256701521269", "a")
        client.sms.send("+256701521269", "a")
        client.sms.send("+256701521269", "a", idempotency_key="order-42")
    keys = [s.headers["idempotency-key"] for s in server.seen]
    assert keys[0] != keys[1]
    assert keys[2] == "order-42"


def test_request_body_and_auth(server: ScriptedServer, api_key: str) -> None:
    server.script(Reply(201, message_json()))
    when = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
    with client_for(server, api_key) as client:
        client.sms.send(
            "+256701521269, +256701521270",
            "Hi",
            from_="MyApp",
            scheduled_for=when,
            callback_url="https://example.com/cb",
            type="marketing",
        )
    seen = server.seen[0]
    assert seen.path == "/api/v1/messages/sms"
    assert seen.headers["authorization"] == f"Bearer {api_key}"
    assert json.loads(seen.body) == {
        "to": ["+256701521269", "+256701521270"],
        "message": "Hi",
        "from": "MyApp",
        "scheduledFor": when.isoformat(),
        "callbackUrl": "https://example.com/cb",
        "type": "marketing",
    }


def test_typed_results(server: ScriptedServer, api_key: str) -> None:
    server.script(
        Reply(
            200,
            {
                "messages": [message_json(id="msg_2"), message_json()],
                "total": 2,
                "page": 1,
                "pages": 1,
            },
        )
    )
    with client_for(server, api_key) as client:
        page = client.sms.history(page=1, limit=2)
    assert server.seen[0].path == "/api/v1/messages?page=1&limit=2"
    assert [m.id for m in page.messages] == ["msg_2", "msg_1"]
    first = page.messages[0]
    assert first.created_at == datetime(2025, 1, 1, tzinfo=UTC)
    assert first.recipients[0].status == "queued"
    assert first.from_ == "MyApp"
    assert first.to == ["+256701521269"]
    # Personal data stays out of reprs.
    assert "+256701521269" not in repr(first)
    assert "Hello" not in repr(first)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, MsGineBadRequestError),
        (401, MsGineAuthenticationError),
        (403, MsGinePermissionError),
        (404, MsGineNotFoundError),
        (409, MsGineConflictError),
        (413, MsGineBadRequestError),
        (422, MsGineBadRequestError),
        (501, MsGineServerError),
    ],
)
def test_errors_are_mapped(
    server: ScriptedServer, api_key: str, status: int, cls: type[msgine.MsGineError]
) -> None:
    server.script(Reply(status, error_json("some_code", "nope", details={"field": "to"})))
    with client_for(server, api_key) as client, pytest.raises(cls) as caught:
        client.messages.get("msg_1")
    error = caught.value
    assert (error.status_code, error.code, error.message) == (status, "some_code", "nope")
    assert error.details == {"field": "to"}
    assert error.request_id == "req_x"
    assert len(server.seen) == 1


def test_rate_limit_honours_retry_after_seconds(server: ScriptedServer, api_key: str) -> None:
    server.script(
        Reply(429, error_json("rate_limit_exceeded"), {"Retry-After": "7"}),
        Reply(201, message_json()),
    )
    delays: list[float] = []
    with client_for(server, api_key, delays) as client:
        client.sms.send("+256701521269", "Hi")
    assert delays == [7.0]


def test_rate_limit_honours_retry_after_http_date(server: ScriptedServer, api_key: str) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    server.script(
        Reply(429, error_json("rate_limit_exceeded"), {"Retry-After": when}),
        Reply(200, message_json()),
    )
    delays: list[float] = []
    with client_for(server, api_key, delays) as client:
        client.messages.get("msg_1")
    assert len(delays) == 1
    assert 20 <= delays[0] <= 31


def test_retry_after_beyond_the_cap_raises_with_retry_after(
    server: ScriptedServer, api_key: str
) -> None:
    server.script(
        Reply(429, error_json("rate_limit_exceeded", retryAfter=3600), {"Retry-After": "3600"})
    )
    delays: list[float] = []
    with (
        client_for(server, api_key, delays) as client,
        pytest.raises(MsGineRateLimitError) as caught,
    ):
        client.sms.send("+256701521269", "Hi")
    assert caught.value.retry_after == 3600
    assert delays == []
    assert len(server.seen) == 1


def test_retries_stop_after_max_retries(server: ScriptedServer, api_key: str) -> None:
    server.script(Reply(502, None))
    delays: list[float] = []
    with client_for(server, api_key, delays) as client, pytest.raises(MsGineServerError) as caught:
        client.sms.send("+256701521269", "Hi")
    assert len(server.seen) == 4
    assert len(delays) == 3
    assert caught.value.code == "http_error"
    assert caught.value.status_code == 502
    assert len({s.headers["idempotency-key"] for s in server.seen}) == 1


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    policy = msgine.RetryPolicy(max_retries=10, backoff_base=0.5, backoff_cap=8.0)
    for index, ceiling in enumerate([0.5, 1, 2, 4, 8, 8]):
        samples = [policy.delay(index, None) for _ in range(200)]
        assert all(s is not None and 0 <= s <= ceiling for s in samples)
        assert max(s for s in samples if s is not None) > ceiling / 2
    assert policy.delay(10, None) is None


def test_post_without_idempotency_key_is_not_retried(server: ScriptedServer, api_key: str) -> None:
    server.script(Reply(503, error_json("unavailable")))
    with client_for(server, api_key) as client, pytest.raises(MsGineServerError):
        client.webhooks.create("https://example.com/hook")
    assert len(server.seen) == 1


def test_get_is_retried(server: ScriptedServer, api_key: str) -> None:
    server.script(Reply(500, None), Reply(408, None), Reply(200, message_json()))
    with client_for(server, api_key) as client:
        assert client.messages.get("msg_1").id == "msg_1"
    assert len(server.seen) == 3


def test_path_segments_are_encoded(server: ScriptedServer, api_key: str) -> None:
    server.script(Reply(200, {"phone": "+256701521269", "purpose": "marketing"}))
    with client_for(server, api_key) as client:
        consent = client.consents.get("+256701521269")
        client.messages.get("../keys")
    assert server.seen[0].path == "/api/v1/consents/%2B256701521269"
    assert server.seen[1].path == "/api/v1/messages/..%2Fkeys"
    assert consent.purpose == "marketing"


def test_resources_use_contract_routes(server: ScriptedServer, api_key: str) -> None:
    server.script(Reply(200, {}))
    with client_for(server, api_key) as client:
        client.keys.create(
            name="ci", scopes=["messages:read"], allowed_ips=["10.0.0.0/8"], expires_in_days=3
        )
        client.keys.list()
        client.keys.rotate("key_1", grace_hours=2)
        client.keys.revoke("key_1")
        client.keys.compromise("key_1")
        client.webhooks.list()
        client.webhooks.update("wh_1", events=["message.sent"])
        client.webhooks.rotate_secret("wh_1", grace_hours=1)
        client.webhooks.deliveries("wh_1")
        client.webhooks.replay("wh_1", "dlv_1")
        client.webhooks.delete("wh_1")
        client.consents.put("+256701521269", "marketing", "web-form")
        client.consents.delete("+256701521269")
        client.suppressions.list()
        client.suppressions.delete("+256701521269")
        client.privacy.export("+256701521269")
        client.privacy.erase("+256701521269")
        client.account.rotate_webhook_secret()
    routes = [(s.method, s.path) for s in server.seen]
    assert routes == [
        ("POST", "/api/v1/keys"),
        ("GET", "/api/v1/keys"),
        ("POST", "/api/v1/keys/key_1/rotate"),
        ("POST", "/api/v1/keys/key_1/revoke"),
        ("POST", "/api/v1/keys/key_1/compromise"),
        ("GET", "/api/v1/webhooks"),
        ("PATCH", "/api/v1/webhooks/wh_1"),
        ("POST", "/api/v1/webhooks/wh_1/rotate-secret"),
        ("GET", "/api/v1/webhooks/wh_1/deliveries"),
        ("POST", "/api/v1/webhooks/wh_1/deliveries/dlv_1/replay"),
        ("DELETE", "/api/v1/webhooks/wh_1"),
        ("PUT", "/api/v1/consents/%2B256701521269"),
        ("DELETE", "/api/v1/consents/%2B256701521269"),
        ("GET", "/api/v1/suppressions"),
        ("DELETE", "/api/v1/suppressions/%2B256701521269"),
        ("GET", "/api/v1/privacy/export?phone=%2B256701521269"),
        ("POST", "/api/v1/privacy/erase"),
        ("POST", "/api/v1/account/webhook-secret"),
    ]
    assert json.loads(server.seen[0].body) == {
        "name": "ci",
        "scopes": ["messages:read"],
        "allowedIps": ["10.0.0.0/8"],
        "expiresInDays": 3,
    }
    assert json.loads(server.seen[2].body) == {"graceHours": 2}


def test_non_json_success_body_is_an_error(api_key: str) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>"))
    client = MsGineClient(api_key, base_url="https://gw.example/api/v1", transport=transport)
    with client, pytest.raises(msgine.MsGineError) as caught:
        client.messages.get("msg_1")
    assert caught.value.code == "invalid_response"


def test_connection_refused_is_retried_then_raised(api_key: str) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), None) as probe:  # type: ignore[arg-type]
        port = probe.server_address[1]
    delays: list[float] = []
    with (
        MsGineClient(
            api_key, base_url=f"http://127.0.0.1:{port}/api/v1", sleep=delays.append
        ) as client,
        pytest.raises(MsGineConnectionError) as caught,
    ):
        client.webhooks.create("https://example.com/hook")  # even a plain POST: never sent
    assert len(delays) == 3
    assert caught.value.status_code is None


def _mock(
    responses: list[httpx.Response | Exception], seen: list[httpx.Request]
) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses[min(len(seen), len(responses)) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    return httpx.MockTransport(handler)


def test_read_timeout_retries_a_send_with_the_same_key(api_key: str) -> None:
    seen: list[httpx.Request] = []
    transport = _mock([httpx.ReadTimeout("slow"), httpx.Response(201, json=message_json())], seen)
    with MsGineClient(
        api_key, base_url="https://gw.example/api/v1", transport=transport, sleep=lambda _: None
    ) as client:
        client.sms.send("+256701521269", "Hi")
    assert len(seen) == 2
    assert seen[0].headers["Idempotency-Key"] == seen[1].headers["Idempotency-Key"]


def test_read_timeout_does_not_retry_a_plain_post(api_key: str) -> None:
    seen: list[httpx.Request] = []
    transport = _mock([httpx.ReadTimeout("slow")], seen)
    with (
        MsGineClient(
            api_key, base_url="https://gw.example/api/v1", transport=transport, sleep=lambda _: None
        ) as client,
        pytest.raises(MsGineTimeoutError),
    ):
        client.keys.create(name="x")
    assert len(seen) == 1


def test_timeout_setting_reaches_the_request(api_key: str) -> None:
    seen: list[httpx.Request] = []
    transport = _mock([httpx.Response(200, json=message_json())], seen)
    with MsGineClient(
        api_key, base_url="https://gw.example/api/v1", transport=transport, timeout=2.5
    ) as client:
        client.messages.get("msg_1")
    assert seen[0].extensions["timeout"] == {"connect": 2.5, "read": 2.5, "write": 2.5, "pool": 2.5}


def test_async_send_retries_with_one_key(server: ScriptedServer, api_key: str) -> None:
    server.script(Reply(503, None), Reply(201, message_json()))
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    async def main() -> msgine.Message:
        async with AsyncMsGineClient(api_key, base_url=server.base_url, sleep=sleep) as client:
            return await client.sms.send(["+256701521269"], "Hi")

    assert asyncio.run(main()).id == "msg_1"
    assert len(server.seen) == 2
    assert len(delays) == 1
    assert server.seen[0].headers["idempotency-key"] == server.seen[1].headers["idempotency-key"]


def test_async_errors_are_mapped(server: ScriptedServer, api_key: str) -> None:
    server.script(Reply(404, error_json("not_found")))

    async def main() -> None:
        async with AsyncMsGineClient(api_key, base_url=server.base_url) as client:
            await client.messages.get("msg_x")

    with pytest.raises(MsGineNotFoundError):
        asyncio.run(main())


# Configuration


def test_environment_defaults(
    monkeypatch: pytest.MonkeyPatch, server: ScriptedServer, api_key: str
) -> None:
    monkeypatch.setenv("MSGINE_API_KEY", api_key)
    monkeypatch.setenv("MSGINE_BASE_URL", server.base_url)
    server.script(Reply(200, message_json()))
    with MsGineClient() as client:
        client.messages.get("msg_1")
    assert server.seen[0].headers["authorization"] == f"Bearer {api_key}"


def test_hosted_api_is_the_default(monkeypatch: pytest.MonkeyPatch, api_key: str) -> None:
    monkeypatch.delenv("MSGINE_BASE_URL", raising=False)
    with MsGineClient(api_key) as client:
        assert client.base_url == "https://api.msgine.net/api/v1"


def test_missing_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MSGINE_API_KEY", raising=False)
    with pytest.raises(MsGineConfigurationError):
        MsGineClient()


def test_key_with_bad_checksum_is_refused_without_echoing_it() -> None:
    key = generate_key("live")
    broken = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(MsGineConfigurationError) as caught:
        MsGineClient(broken)
    assert broken not in str(caught.value)
    assert broken[12:] not in repr(caught.value)


@pytest.mark.parametrize("url", ["http://api.example.com/api/v1", "http://10.0.0.5:8080/api/v1"])
def test_plain_http_remote_url_is_refused(api_key: str, url: str) -> None:
    with pytest.raises(MsGineConfigurationError):
        MsGineClient(api_key, base_url=url)
    with MsGineClient(api_key, base_url=url, allow_insecure_http=True) as client:
        assert client.base_url == url


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_plain_http_loopback_is_allowed(api_key: str, host: str) -> None:
    with MsGineClient(api_key, base_url=f"http://{host}:8080/api/v1") as client:
        assert client.base_url.startswith("http://")


@pytest.fixture
def tls_server() -> Iterator[tuple[ScriptedServer, trustme.CA]]:
    ca = trustme.CA()
    scripted = ScriptedServer()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    scripted.httpd.socket = context.wrap_socket(scripted.httpd.socket, server_side=True)
    scripted.base_url = scripted.base_url.replace("http://", "https://")
    yield scripted, ca
    scripted.close()


def test_https_with_a_private_ca(
    tls_server: tuple[ScriptedServer, trustme.CA], api_key: str
) -> None:
    scripted, ca = tls_server
    scripted.script(Reply(201, message_json()))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with MsGineClient(api_key, base_url=scripted.base_url, verify=context) as client:
        assert client.sms.send("+256701521269", "Hi").id == "msg_1"
    # An untrusted certificate is a connection error, never a silent downgrade.
    with (
        MsGineClient(
            api_key, base_url=scripted.base_url, sleep=lambda _: None, max_retries=0
        ) as client,
        pytest.raises(MsGineConnectionError),
    ):
        client.messages.get("msg_1")


def test_redirects_are_not_followed(server: ScriptedServer, api_key: str) -> None:
    server.script(Reply(307, None, {"Location": "https://evil.example/steal"}))
    with client_for(server, api_key) as client, pytest.raises(msgine.MsGineError) as caught:
        client.messages.get("msg_1")
    assert caught.value.status_code == 307
    assert len(server.seen) == 1


def test_threads_can_share_a_client(server: ScriptedServer, api_key: str) -> None:
    server.script(Reply(200, message_json()))
    with client_for(server, api_key) as client:
        threads = [threading.Thread(target=client.messages.get, args=("msg_1",)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(server.seen) == 4
