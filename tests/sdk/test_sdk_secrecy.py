"""Nothing the SDK produces (reprs, strs, exceptions, logs at DEBUG) contains the API key."""

from __future__ import annotations

import asyncio
import logging
import traceback

import httpx
import pytest
from sdk_helpers import Reply, ScriptedServer, error_json, message_json

from msgine import AsyncMsGineClient, MsGineClient, MsGineError
from msgine._config import ApiKeyAuth
from msgine._keyformat import generate_key


def test_key_never_printed(server: ScriptedServer, caplog: pytest.LogCaptureFixture) -> None:
    key = generate_key("live")
    secret_part = key[len("msgine_live_") :]
    texts: list[str] = []
    server.script(
        Reply(503, error_json("unavailable")),
        Reply(201, message_json()),
        Reply(401, error_json("unauthorized")),
        Reply(429, error_json("rate_limit_exceeded"), {"Retry-After": "999"}),
    )
    with caplog.at_level(logging.DEBUG):
        client = MsGineClient(key, base_url=server.base_url, sleep=lambda _: None)
        texts += [repr(client), str(client), repr(client._auth), repr(client._http.headers)]
        message = client.sms.send("+256701521269", "Hi")
        texts.append(repr(message))
        for _ in range(2):
            try:
                client.messages.get("msg_1")
            except MsGineError as exc:
                texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        client.close()

        async def run_async() -> None:
            async with AsyncMsGineClient(
                key, base_url="http://127.0.0.1:9/api/v1", max_retries=0
            ) as aclient:
                texts.append(repr(aclient))
                try:
                    await aclient.messages.get("msg_1")
                except MsGineError as exc:
                    texts.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])

        asyncio.run(run_async())
    texts.append(caplog.text)
    texts += [repr(record.__dict__) for record in caplog.records]
    assert any("retry" in record.getMessage() for record in caplog.records)  # logs were captured
    joined = "\n".join(texts)
    assert secret_part not in joined
    assert secret_part[:-4] not in joined


def test_auth_header_is_added_per_request_only() -> None:
    key = generate_key("test")
    auth = ApiKeyAuth(key)
    request = httpx.Request("GET", "https://gw.example/")
    flow = auth.auth_flow(request)
    assert next(flow).headers["Authorization"] == f"Bearer {key}"
    assert key not in repr(auth)
