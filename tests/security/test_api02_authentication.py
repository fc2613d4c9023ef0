"""API2:2023 Broken authentication: credentials the gateway must not guess at, and webhook
signatures a receiver can rely on.

- A request names one API key in one header; conflicting credentials are a 400, never resolved
  by picking one (a proxy and the gateway could pick differently).
- The same for the headers that decide who the caller is or what a retry is: every
  X-Forwarded-For line counts, and one idempotency key per send.
- The SDK accepts a delivery signed only by ``x-msgine-signature`` (no signed timestamp) only
  when asked to, and then only once per event id and while the event is recent.
- ``x-msgine-signature`` is exactly one hex value, during a secret rotation too.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from msgine.webhooks import (
    MemoryDedupeStore,
    WebhookReceiver,
    WebhookVerificationError,
    WebhookVerifier,
    encode_body,
    generate_secret,
    sign_hex,
    signature_headers,
    verify,
)
from support import make_settings, serve_in_process

# --- one credential per request ----------------------------------------------------------


async def _get(api: Any, headers: list[tuple[str, str]]) -> httpx.Response:
    return await api.client.get("/api/v1/messages", headers=headers)


async def test_one_key_in_either_header_or_both_agreeing_is_accepted(api: Any) -> None:
    for headers in (
        [("X-Api-Key", api.key)],
        [("Authorization", f"Bearer {api.key}")],
        [("X-Api-Key", api.key), ("Authorization", f"Bearer {api.key}")],
        [("X-Api-Key", api.key), ("Authorization", api.key)],
    ):
        assert (await _get(api, headers)).status_code == 200, headers


async def test_conflicting_credentials_are_a_400(api: Any) -> None:
    other = api.new_key(name="other")
    cases = [
        [("X-Api-Key", api.key), ("Authorization", f"Bearer {other}")],
        [("X-Api-Key", api.key), ("Authorization", "Bearer msgine_test_forged")],
        [("X-Api-Key", api.key), ("X-Api-Key", other)],
        [("X-Api-Key", api.key), ("X-Api-Key", api.key)],
        [("Authorization", f"Bearer {api.key}"), ("Authorization", f"Bearer {other}")],
        [("Authorization", f"Bearer {api.key}"), ("Authorization", "Basic dXNlcjpwYXNz")],
    ]
    for headers in cases:
        response = await _get(api, headers)
        assert response.status_code == 400, (headers, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["details"] == {"reason": "conflicting_credentials"}
        assert api.key not in response.text and other not in response.text


async def test_conflicting_credentials_on_the_send_path_too(api: Any) -> None:
    other = api.new_key(name="other")
    response = await api.client.post(
        "/api/v1/messages/sms",
        json={"to": "+256701521269", "message": "hi"},
        headers=[("X-Api-Key", other), ("Authorization", f"Bearer {api.key}")],
    )
    assert response.status_code == 400
    listed = await api.client.get("/api/v1/messages", headers=api.headers())
    assert listed.json()["total"] == 0


async def test_two_idempotency_keys_are_refused(api: Any) -> None:
    body = {"to": "+256701521269", "message": "hi"}
    both = [("Idempotency-Key", "a1"), ("Idempotency-Key", "b2")]
    response = await api.client.post(
        "/api/v1/messages/sms", json=body, headers=[*api.headers().items(), *both]
    )
    assert response.status_code == 400, response.text
    mixed = await api.client.post(
        "/api/v1/messages/sms",
        json={**body, "idempotencyKey": "b2"},
        headers={**api.headers(), "Idempotency-Key": "a1"},
    )
    assert mixed.status_code == 400, mixed.text
    agreeing = await api.client.post(
        "/api/v1/messages/sms",
        json={**body, "idempotencyKey": "a1"},
        headers={**api.headers(), "Idempotency-Key": "a1"},
    )
    assert agreeing.status_code == 201, agreeing.text


@pytest.fixture
async def behind_proxy(tmp_path: Path, database_url: str | None, clock: Any) -> AsyncIterator[Any]:
    """An app whose peer (the test client, 127.0.0.1) is a trusted proxy."""
    from msgine.server.keys import create_key
    from msgine.server.runtime import Runtime

    settings = make_settings(tmp_path, database_url, trusted_proxies="127.0.0.0/8")
    runtime = Runtime.open(settings, clock=clock)
    try:
        async with serve_in_process(runtime) as (_app, client, first):
            now = runtime.now()
            allowed = runtime.db.write(
                lambda conn: create_key(
                    conn,
                    runtime.vault,
                    account_id=first.record["account_id"],
                    now=now,
                    allowed_ips=["198.51.100.7/32"],
                )
            )
            yield client, allowed.secret
    finally:
        runtime.close()


async def test_every_forwarded_for_line_counts(behind_proxy: Any) -> None:
    """A client's own X-Forwarded-For line cannot stand in for the one its proxy added."""
    client, key = behind_proxy
    url, auth = "/api/v1/messages", ("X-Api-Key", key)
    allowed = await client.get(url, headers=[auth, ("X-Forwarded-For", "198.51.100.7")])
    assert allowed.status_code == 200, allowed.text
    forged_first = [auth, ("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-For", "203.0.113.9")]
    response = await client.get(url, headers=forged_first)
    assert response.status_code == 403, response.text


# --- the SDK's legacy verification ----------------------------------------------------------

NOW = int(time.time())


def _legacy_delivery(secret: str, *, age: int = 0, event_id: str = "evt_l") -> tuple[bytes, dict]:
    stamp = datetime.fromtimestamp(NOW - age, UTC).isoformat().replace("+00:00", "Z")
    body = encode_body({"id": event_id, "event": "message.sent", "timestamp": stamp})
    return body, {"x-msgine-signature": sign_hex(secret, body)}


def _reason(*args: Any, **kwargs: Any) -> str:
    with pytest.raises(WebhookVerificationError) as caught:
        verify(*args, **kwargs)
    return caught.value.reason


def test_legacy_signatures_are_refused_by_default() -> None:
    secret = generate_secret()
    body, headers = _legacy_delivery(secret)
    assert _reason(body, headers, secret, now=NOW) == "missing_header"
    with pytest.raises(WebhookVerificationError):
        WebhookVerifier(secret).verify(body, headers, now=NOW)


def test_legacy_needs_a_dedupe_store() -> None:
    secret = generate_secret()
    body, headers = _legacy_delivery(secret)
    assert _reason(body, headers, secret, now=NOW, allow_legacy=True) == "bad_configuration"
    with pytest.raises(WebhookVerificationError) as caught:
        WebhookVerifier(secret, allow_legacy=True)
    assert caught.value.reason == "bad_configuration"
    with pytest.raises(WebhookVerificationError):
        WebhookReceiver(secret, allow_legacy=True)


def test_a_captured_legacy_delivery_cannot_be_replayed() -> None:
    secret = generate_secret()
    store = MemoryDedupeStore()
    body, headers = _legacy_delivery(secret)
    options: dict[str, Any] = {"now": NOW, "allow_legacy": True, "dedupe": store}
    assert verify(body, headers, secret, **options)["id"] == "evt_l"
    assert _reason(body, headers, secret, **options) == "replayed"
    # Once the store has forgotten the id, the signed body's own age refuses it.
    old_body, old_headers = _legacy_delivery(secret, age=4 * 86400, event_id="evt_old")
    assert _reason(old_body, old_headers, secret, **options) == "timestamp_too_old"
    undated = encode_body({"id": "evt_u", "event": "message.sent"})
    undated_headers = {"x-msgine-signature": sign_hex(secret, undated)}
    assert _reason(undated, undated_headers, secret, **options) == "bad_timestamp"


def test_a_receiver_in_legacy_mode_answers_a_replay_as_a_duplicate() -> None:
    secret = generate_secret()
    receiver = WebhookReceiver(secret, allow_legacy=True, dedupe=MemoryDedupeStore())
    body, headers = _legacy_delivery(secret, event_id=f"evt_{time.time_ns()}")
    first = receiver.check(body, headers, "203.0.113.10")
    assert first.event is not None
    receiver.succeeded(first)
    again = receiver.check(body, headers, "203.0.113.10")
    assert again.event is None and again.duplicate


def test_standard_webhooks_deliveries_still_verify_without_a_store() -> None:
    secret = generate_secret()
    body = encode_body({"id": "evt_s", "event": "message.sent"})
    headers = signature_headers([secret], "evt_s", NOW, body)
    assert verify(body, headers, secret, now=NOW)["id"] == "evt_s"


# --- x-msgine-signature during a rotation ---------------------------------------------------------


def test_the_hex_signature_is_one_value_signed_with_the_old_secret_during_grace() -> None:
    old, new = generate_secret(), generate_secret()
    body = encode_body({"id": "evt_g", "event": "message.sent"})
    headers = signature_headers([new, old], "evt_g", NOW, body)
    assert re.fullmatch(r"[0-9a-f]{64}", headers["x-msgine-signature"])
    assert headers["x-msgine-signature"] == sign_hex(old, body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    after = signature_headers([new], "evt_g", NOW, body)
    assert after["x-msgine-signature"] == sign_hex(new, body)
