"""Every delivery verifies with the PyPI ``standardwebhooks`` library and a plain hex HMAC; any
change to the body, the timestamp or the secret makes verification fail."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from webhooks_helpers import create_endpoint, deliveries, hex_verifies, standard_verifies

from msgine.webhooks._signing import generate_secret
from webhook_receiver import Receiver, Reply


async def _delivered(api: Any, receiver: Receiver, **send: Any) -> tuple[dict[str, Any], list[Any]]:
    endpoint = await create_endpoint(api, receiver.url())
    response = await api.send(**send)
    assert response.status_code == 201, response.text
    await api.drain()
    return endpoint, receiver.hits_for()


async def test_every_delivery_verifies_with_standardwebhooks_and_hex_hmac(
    api: Any, receiver: Receiver
) -> None:
    endpoint, hits = await _delivered(api, receiver, to=["+256701521269", "+256701521270"])
    # one message.sent and one message.delivered per recipient
    kinds = sorted(h.event["event"] for h in hits)
    assert kinds == ["message.delivered"] * 2 + ["message.sent"] * 2
    for hit in hits:
        assert standard_verifies(endpoint["secret"], hit)
        assert hex_verifies(endpoint["secret"], hit)
        assert hit.headers["content-type"] == "application/json"
        assert hit.headers["webhook-id"] == hit.event["id"]
        assert hit.event["id"].startswith("evt_")


async def test_tampered_body_changed_timestamp_and_wrong_secret_fail(
    api: Any, receiver: Receiver
) -> None:
    endpoint, hits = await _delivered(api, receiver)
    hit, secret = hits[0], endpoint["secret"]
    assert standard_verifies(secret, hit)
    tampered = replace(hit, body=hit.body.replace(b'"sent"', b'"failed"'))
    assert tampered.body != hit.body
    assert not standard_verifies(secret, tampered)
    assert not hex_verifies(secret, tampered)
    stamp = int(hit.headers["webhook-timestamp"]) + 1
    moved = replace(hit, headers={**hit.headers, "webhook-timestamp": str(stamp)})
    assert not standard_verifies(secret, moved)
    other = generate_secret()
    assert not standard_verifies(other, hit)
    assert not hex_verifies(other, hit)


async def test_body_is_compact_json_with_the_contract_fields(api: Any, receiver: Receiver) -> None:
    _, hits = await _delivered(api, receiver, message="Héllo ✓")
    for hit in hits:
        event = hit.event
        assert hit.body == json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        assert list(event)[:2] == ["id", "event"]
        assert {"status", "messageId", "to", "from", "sid", "timestamp", "data"} <= set(event)
        assert event["to"] == "+256701521269"
        assert event["timestamp"].endswith("Z")


async def test_retries_resend_the_stored_bytes_with_the_same_id(
    api: Any, receiver: Receiver
) -> None:
    receiver.script("/hook", Reply(500), Reply(500))
    endpoint = await create_endpoint(api, receiver.url(), events=["message.sent"])
    await api.send()
    await api.drain()
    api.runtime.clock.advance(seconds=7)
    await api.drain()
    api.runtime.clock.advance(seconds=400)
    await api.drain()
    hits = receiver.hits_for()
    assert len(hits) == 3
    assert len({h.body for h in hits}) == 1
    assert len({h.headers["webhook-id"] for h in hits}) == 1
    assert all(standard_verifies(endpoint["secret"], h) for h in hits)
    [delivery] = await deliveries(api, endpoint["id"])
    assert delivery["eventId"] == hits[0].event["id"]


async def test_callback_url_deliveries_use_the_account_secret(api: Any, receiver: Receiver) -> None:
    response = await api.client.post("/api/v1/account/webhook-secret", headers=api.headers())
    assert response.status_code == 200, response.text
    secret = response.json()["secret"]
    assert secret.startswith("whsec_")
    await api.send(callbackUrl=receiver.url("/callback"))
    await api.drain()
    hits = receiver.hits_for("/callback")
    assert sorted(h.event["event"] for h in hits) == ["message.delivered", "message.sent"]
    for hit in hits:
        assert standard_verifies(secret, hit)
        assert hex_verifies(secret, hit)


async def test_account_secret_is_created_on_first_callback_delivery(
    api: Any, receiver: Receiver
) -> None:
    await api.send(callbackUrl=receiver.url("/callback"))
    await api.drain()
    hits = receiver.hits_for("/callback")
    assert len(hits) == 2
    # the receiver then fetches the secret: the one created lazily becomes the previous one
    response = await api.client.post(
        "/api/v1/account/webhook-secret", json={"graceHours": 1}, headers=api.headers()
    )
    assert response.status_code == 200
    assert response.json()["previousSecretExpiresAt"] is not None
    entries = await api.client.get("/api/v1/audit", headers=api.headers())
    actions = [e["action"] for e in entries.json()["entries"]]
    assert actions.count("webhook.account_secret_rotated") == 2
