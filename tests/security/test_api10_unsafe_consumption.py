"""API10:2023 Unsafe consumption of APIs: the SDK treats the server's answer as untrusted input.

A wrong base URL, a proxy or a hostile host may answer anything. The SDK reads at most a capped
amount of it, follows no redirect (its API key never goes to another host), turns anything that
does not parse into an ``MsGineError``, and keeps the text an error carries bounded and free of
control characters, since callers log their exceptions. (The gateway's own consumption of
receivers' answers, capped, never redirected, excerpted without control characters, is tested in
tests/test_webhook_transport.py.)
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from msgine import AsyncMsGineClient, MsGineClient, MsGineError
from msgine._keyformat import generate_key

BASE = "https://api.example.test/api/v1"
KEY = generate_key("test")
MESSAGE = {"id": "msg_1", "status": "queued", "to": ["+256701521269"], "recipients": []}


def _client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> MsGineClient:
    return MsGineClient(
        KEY,
        base_url=BASE,
        transport=httpx.MockTransport(handler),
        max_retries=0,
        sleep=lambda _: None,
        **kwargs,
    )


def _raises(client: MsGineClient) -> MsGineError:
    with pytest.raises(MsGineError) as caught:
        client.messages.get("msg_1")
    return caught.value


class Chunks(httpx.SyncByteStream):
    """A body of ``total`` bytes produced lazily, counting what the client actually read."""

    def __init__(self, total: int, chunk: bytes = b"x" * 65536) -> None:
        self.total, self.chunk, self.sent = total, chunk, 0

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < self.total:
            self.sent += len(self.chunk)
            yield self.chunk


def test_a_huge_success_body_is_not_read_whole() -> None:
    stream = Chunks(1024 * 1024 * 1024)  # 1 GiB, never materialised
    client = _client(lambda request: httpx.Response(200, stream=stream))
    error = _raises(client)
    assert error.code == "response_too_large"
    assert stream.sent <= 9 * 1024 * 1024


def test_a_compression_bomb_is_cut_off() -> None:
    bomb = gzip.compress(b"[" + b" " * (200 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 1024 * 1024
    client = _client(
        lambda request: httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})
    )
    assert _raises(client).code == "response_too_large"


def test_a_huge_error_body_is_truncated_and_its_text_bounded() -> None:
    message = "\x1b[31mFAKE LOG LINE\nlevel=info user=admin\u202e " + "A" * 100_000
    body = json.dumps({"error": {"code": "bad\ncode", "message": message}}).encode()
    client = _client(
        lambda request: httpx.Response(
            500, content=body + b" " * 10_000_000, headers={"X-Request-Id": "req\nforged"}
        )
    )
    error = _raises(client)
    text = str(error) + repr(error)
    assert len(error.message) <= 500
    assert "\x1b" not in text and "\n" not in str(error) and "\u202e" not in text
    assert error.code == "http_error"
    assert error.request_id is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"[]",
        b'"a string"',
        b"null",
        b"12",
        json.dumps({"id": ["not", "a", "string"], "recipients": "nope"}).encode(),
        json.dumps({"recipients": [1, "x", None]}).encode(),
        b"\xff\xfe\x00garbage",
    ],
)
def test_garbage_answers_become_sdk_errors(body: bytes) -> None:
    for status in (200, 400, 429, 500):
        client = _client(lambda request, s=status: httpx.Response(s, content=body))
        try:
            client.messages.get("msg_1")
        except MsGineError:
            continue
        # a shape the SDK can read is fine too; anything else would have raised above


@pytest.mark.parametrize("retry_after", ["Infinity", "NaN", "1e308", "-5", "true"])
def test_a_hostile_retry_after_in_the_body_is_ignored(retry_after: str) -> None:
    body = f'{{"error": {{"code": "rate_limit_exceeded", "retryAfter": {retry_after}}}}}'
    client = _client(lambda request: httpx.Response(429, content=body.encode()))
    error = _raises(client)
    assert getattr(error, "retry_after", None) is None


def test_redirects_are_not_followed_and_the_key_never_leaves() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "api.example.test":
            return httpx.Response(302, headers={"Location": "https://collector.example/steal"})
        return httpx.Response(200, json=MESSAGE)

    error = _raises(_client(handler))
    assert error.status_code == 302
    assert [r.url.host for r in seen] == ["api.example.test"]


async def test_the_async_client_caps_answers_too() -> None:
    class AsyncChunks(httpx.AsyncByteStream):
        sent = 0

        async def __aiter__(self) -> Any:
            while self.sent < 1024 * 1024 * 1024:
                self.sent += 65536
                yield b"x" * 65536

    stream = AsyncChunks()
    client = AsyncMsGineClient(
        KEY,
        base_url=BASE,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, stream=stream)),
        max_retries=0,
    )
    with pytest.raises(MsGineError) as caught:
        await client.messages.get("msg_1")
    await client.aclose()
    assert caught.value.code == "response_too_large"
    assert stream.sent <= 9 * 1024 * 1024
