"""Bad input gets its 4xx code in the contract's error format; nothing is a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

OK_TO = "+256701521269"
SEND = "/api/v1/messages/sms"

CASES: list[tuple[str, Any, int, str]] = [
    ("malformed json", b'{"to": "+256701521269", "message": ', 400, "invalid_request"),
    ("not an object", b"[1, 2, 3]", 400, "invalid_request"),
    ("missing to", {"message": "hi"}, 400, "invalid_request"),
    ("missing message", {"to": OK_TO}, 400, "invalid_request"),
    ("to is a number", {"to": 256701521269, "message": "hi"}, 400, "invalid_request"),
    ("message is a list", {"to": OK_TO, "message": ["hi"]}, 400, "invalid_request"),
    ("bad type", {"to": OK_TO, "message": "hi", "type": "promo"}, 400, "invalid_request"),
    ("invalid number", {"to": "+1234", "message": "hi"}, 400, "invalid_phone_number"),
    ("reserved number", {"to": "+447700900123", "message": "hi"}, 400, "invalid_phone_number"),
    ("not a number", {"to": "hello", "message": "hi"}, 400, "invalid_phone_number"),
    ("one bad in list", {"to": [OK_TO, "+1"], "message": "hi"}, 400, "invalid_phone_number"),
    ("no recipients", {"to": [], "message": "hi"}, 400, "invalid_request"),
    ("empty message", {"to": OK_TO, "message": ""}, 400, "message_empty"),
    ("only controls", {"to": OK_TO, "message": " \u200b\u202e\x07 "}, 400, "message_empty"),
    ("too long", {"to": OK_TO, "message": "a" * 1001}, 400, "message_too_long"),
    (
        "sender too long",
        {"to": OK_TO, "message": "hi", "from": "ABCDEFGHIJKL"},
        400,
        "invalid_sender_id",
    ),
    ("sender symbols", {"to": OK_TO, "message": "hi", "from": "My<App>"}, 400, "invalid_sender_id"),
    (
        "http callback",
        {"to": OK_TO, "message": "hi", "callbackUrl": "http://example.com/h"},
        400,
        "insecure_callback_url",
    ),
    (
        "bad schedule",
        {"to": OK_TO, "message": "hi", "scheduledFor": "tomorrow"},
        400,
        "invalid_request",
    ),
    (
        "past schedule",
        {"to": OK_TO, "message": "hi", "scheduledFor": "2020-01-01T00:00:00Z"},
        400,
        "invalid_request",
    ),
    (
        "far schedule",
        {"to": OK_TO, "message": "hi", "scheduledFor": "2099-01-01T00:00:00Z"},
        400,
        "invalid_request",
    ),
    (
        "naive schedule",
        {"to": OK_TO, "message": "hi", "scheduledFor": "2030-01-01T00:00:00"},
        400,
        "invalid_request",
    ),
    (
        "empty idempotency key",
        {"to": OK_TO, "message": "hi", "idempotencyKey": ""},
        400,
        "invalid_request",
    ),
]


@pytest.mark.parametrize(("name", "body", "status", "code"), CASES, ids=[c[0] for c in CASES])
async def test_bad_send_input(api: Any, name: str, body: Any, status: int, code: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await api.client.post(
        SEND, content=raw, headers={**api.headers(), "Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    error = response.json()
    assert error["error"]["code"] == code
    assert error["error"]["message"]
    assert isinstance(error["error"]["details"], dict)
    assert error["meta"]["requestId"] == response.headers["x-request-id"]
    # Error bodies never echo personal data back.
    assert OK_TO not in response.text


async def test_too_many_recipients(api: Any) -> None:
    numbers = [f"+2567015{n:05d}" for n in range(1001)]
    response = await api.send(to=numbers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


async def test_huge_body_is_413(api: Any) -> None:
    response = await api.client.post(
        SEND,
        content=json.dumps({"to": OK_TO, "message": "x" * 70_000}),
        headers={**api.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_huge_chunked_body_is_413(api: Any) -> None:
    async def chunks() -> Any:
        for _ in range(80):
            yield b"x" * 1024

    response = await api.client.post(
        SEND, content=chunks(), headers={**api.headers(), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_framework_errors_use_the_contract_format(api: Any) -> None:
    not_found = await api.client.get("/api/v1/nothing-here")
    assert not_found.status_code == 404
    assert not_found.json()["error"]["code"] == "not_found"
    wrong_method = await api.client.delete(SEND, headers=api.headers())
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    bad_query = await api.client.get("/api/v1/messages?limit=500", headers=api.headers())
    assert bad_query.status_code == 400
    assert bad_query.json()["error"]["code"] == "invalid_request"


async def test_content_is_sms_text_not_html(api: Any) -> None:
    text = "<b>5 > 3</b> & \"quotes\" 'single'"
    response = await api.send(message=text)
    assert response.status_code == 201
    assert response.json()["content"] == text


async def test_duplicate_recipients_are_merged(api: Any) -> None:
    response = await api.send(to=["+256701521269", "+256 701 521 269", "00256701521269"])
    assert response.status_code == 201
    assert response.json()["to"] == ["+256701521269"]
    assert response.json()["cost"] == 30


async def test_request_id_is_echoed_when_safe(api: Any) -> None:
    ok = await api.client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert ok.headers["x-request-id"] == "abc-123"
    unsafe = await api.client.get("/healthz", headers={"X-Request-Id": "a b<>" * 30})
    assert unsafe.headers["x-request-id"].startswith("req_")
