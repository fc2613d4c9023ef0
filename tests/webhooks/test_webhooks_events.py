"""Event types, their bodies, and endpoints filtering by event type."""

from __future__ import annotations

from typing import Any

import pytest
from webhooks_helpers import create_endpoint, standard_verifies

from msgine.server import events
from webhook_receiver import Receiver


async def test_endpoints_receive_only_their_event_types(api: Any, receiver: Receiver) -> None:
    await create_endpoint(api, receiver.url("/delivered"), events=["message.delivered"])
    await create_endpoint(api, receiver.url("/failed"), events=["message.failed"])
    await create_endpoint(api, receiver.url("/all"))
    await api.send(to=["+256701521269", "+256701521999"])  # numbers ending 999 fail
    await api.drain()
    delivered = receiver.hits_for("/delivered")
    failed = receiver.hits_for("/failed")
    assert [h.event["event"] for h in delivered] == ["message.delivered"]
    assert [h.event["event"] for h in failed] == ["message.failed"]
    assert failed[0].event["to"] == "+256701521999"
    assert failed[0].event["data"]["errorCode"]
    kinds = sorted(h.event["event"] for h in receiver.hits_for("/all"))
    assert "message.delivered" in kinds
    assert "message.failed" in kinds
    # one event per recipient: each event id is delivered once to each subscribed endpoint
    ids = [h.event["id"] for h in receiver.hits_for("/all")]
    assert len(ids) == len(set(ids))


async def test_message_received_for_inbound_sms(api: Any, receiver: Receiver) -> None:
    endpoint = await create_endpoint(api, receiver.url(), events=["message.received"])
    response = await api.client.post(
        "/api/v1/simulator/inbound",
        json={"from": "+256701521269", "to": "+256700000001", "message": "Hello there"},
        headers=api.headers(),
    )
    assert response.status_code == 201, response.text
    await api.drain()
    [hit] = receiver.hits_for()
    event = hit.event
    assert event["event"] == "message.received"
    assert event["from"] == "+256701521269"
    assert event["to"] == "+256700000001"
    assert event["messageId"] == response.json()["id"]
    assert event["data"]["message"] == "Hello there"
    assert standard_verifies(endpoint["secret"], hit)


async def test_key_revoked_body_names_the_key_but_holds_no_secret(
    api: Any, receiver: Receiver
) -> None:
    await create_endpoint(api, receiver.url(), events=["key.revoked"])
    doomed = api.new_key(name="doomed")
    listed = (await api.client.get("/api/v1/keys", headers=api.headers())).json()["keys"]
    [key_id] = [k["id"] for k in listed if k["name"] == "doomed"]
    response = await api.client.post(f"/api/v1/keys/{key_id}/revoke", headers=api.headers())
    assert response.status_code == 200, response.text
    await api.drain()
    [hit] = receiver.hits_for()
    assert hit.event["event"] == "key.revoked"
    assert hit.event["data"]["keyId"] == key_id
    assert doomed.encode() not in hit.body
    assert doomed[-12:].encode() not in hit.body


@pytest.mark.parametrize(
    ("opted_out", "kind"), [(True, "contact.opted_out"), (False, "contact.opted_in")]
)
async def test_contact_events(api: Any, receiver: Receiver, opted_out: bool, kind: str) -> None:
    await create_endpoint(api, receiver.url(), events=[kind])
    runtime = api.runtime
    now = runtime.now()
    phone = "+256701521269"
    runtime.db.write(
        lambda conn: events.contact_changed(
            conn,
            runtime.vault,
            account_id=api.account_id,
            mode="test",  # the endpoint was registered with a test key
            opted_out=opted_out,
            phone=phone,
            phone_index=runtime.vault.blind_index(api.account_id, phone),
            now=now,
            source="keyword",
            keyword="STOP" if opted_out else "START",
        )
    )
    await api.drain()
    [hit] = receiver.hits_for()
    assert hit.event["event"] == kind
    assert hit.event["from"] == phone
    assert hit.event["data"]["source"] == "keyword"


def test_unknown_event_types_are_refused(runtime: Any) -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        runtime.db.write(
            lambda conn: events.emit(
                conn,
                runtime.vault,
                account_id="acc_x",
                mode="live",
                event_type="message.exploded",
                now=runtime.now(),
            )
        )
