"""Inbound STOP/START/HELP through the simulator carrier, end to end, on both databases."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from compliance_helpers import OTHER, PHONE

from msgine.server.storage._tables import (
    audit_log,
    events,
    inbound_messages,
    suppressions,
    webhook_deliveries,
)

pytestmark = pytest.mark.usefixtures("every_event_stored")  # which events, not who gets them


async def _endpoint(api: Any) -> str:
    response = await api.client.post(
        "/api/v1/webhooks",
        json={"url": "https://127.0.0.1:9/hooks", "events": ["contact.opted_out"]},
        headers=api.headers(),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_stop_blocks_next_send_start_restores_it(api: Any, comp: Any) -> None:
    first = await api.send(to=PHONE, message="Your code is 1234")
    assert first.json()["recipients"][0]["status"] == "queued"

    result = await comp.inbound("  stop ")
    assert result["keyword"] == "opt_out"

    blocked = await api.send(to=PHONE, message="Your code is 5678")
    assert blocked.status_code == 201
    body = blocked.json()
    assert body["status"] == "rejected"
    assert body["recipients"] == [
        {**body["recipients"][0], "status": "rejected", "errorCode": "recipient_opted_out"}
    ]
    assert body["cost"] == 0

    result = await comp.inbound("START")
    assert result["keyword"] == "opt_in"
    again = await api.send(to=PHONE, message="Your code is 9012")
    assert again.json()["recipients"][0]["status"] == "queued"
    await api.drain()
    assert (await comp.message(again.json()["id"]))["status"] == "delivered"


async def test_stop_sends_exactly_one_confirmation_and_it_is_delivered(api: Any, comp: Any) -> None:
    result = await comp.inbound("Stop.", to="+256772000001")
    reply_id = result["replyMessageId"]
    await api.drain()
    reply = await comp.message(reply_id)
    assert reply["to"] == [PHONE]
    assert reply["from"] == "+256772000001"
    assert reply["type"] == "transactional"
    assert reply["status"] == "delivered"
    assert "unsubscribed" in reply["content"]
    assert "START" in reply["content"]
    assert reply["content"].startswith("MsGine:")

    repeated = await comp.inbound("STOP")
    assert repeated == {**repeated, "keyword": "opt_out", "changed": False}
    assert "replyMessageId" not in repeated
    # One suppression row, one opted_out event: the second STOP changed nothing.
    assert len(comp.rows(suppressions)) == 1
    assert len(comp.rows(events, events.c.type == "contact.opted_out")) == 1


async def test_help_is_answered_with_org_name_and_opt_out(api: Any, comp: Any) -> None:
    patched = await api.client.patch(
        "/api/v1/account/policy",
        json={"organizationName": "Acme Shop"},
        headers=api.headers(),
    )
    assert patched.status_code == 200, patched.text
    result = await comp.inbound("help me")
    assert result["keyword"] == "help"
    await api.drain()
    answer = await comp.message(result["replyMessageId"])
    assert answer["status"] == "delivered"
    assert "Acme Shop" in answer["content"]
    assert "Reply STOP to opt out" in answer["content"]


async def test_custom_help_text_still_names_org_and_opt_out(api: Any, comp: Any) -> None:
    await api.client.patch(
        "/api/v1/account/policy",
        json={"organizationName": "Acme", "helpText": "Call 0800 123 for support."},
        headers=api.headers(),
    )
    result = await comp.inbound("INFO")
    content = (await comp.message(result["replyMessageId"]))["content"]
    assert content.startswith("Call 0800 123 for support.")
    assert "Acme: Reply STOP to opt out" in content


async def test_help_is_answered_even_when_opted_out(api: Any, comp: Any) -> None:
    await comp.inbound("STOP")
    result = await comp.inbound("HELP")
    await api.drain()
    assert (await comp.message(result["replyMessageId"]))["status"] == "delivered"


async def test_opt_out_raises_event_with_pending_delivery_and_audit(api: Any, comp: Any) -> None:
    endpoint_id = await _endpoint(api)
    result = await comp.inbound("STOP")

    found = comp.rows(events, events.c.type == "contact.opted_out")
    assert len(found) == 1
    event = found[0]
    body = json.loads(
        api.runtime.vault.decrypt(event["body"], table="events", column="body", row_id=event["id"])
    )
    assert body["event"] == "contact.opted_out"
    assert body["from"] == PHONE
    assert body["data"]["keyword"] == "opt_out"
    deliveries = comp.rows(webhook_deliveries, webhook_deliveries.c.event_id == event["id"])
    assert [(d["endpoint_id"], d["status"]) for d in deliveries] == [(endpoint_id, "pending")]

    entries = comp.rows(audit_log, audit_log.c.action == "contact.opted_out")
    assert [(e["actor"], e["target"]) for e in entries] == [("inbound:keyword", result["id"])]
    assert PHONE not in json.dumps(entries, default=str)

    await comp.inbound("START")
    assert len(comp.rows(events, events.c.type == "contact.opted_in")) == 1
    assert len(comp.rows(audit_log, audit_log.c.action == "contact.opted_in")) == 1


async def test_non_keywords_change_nothing(api: Any, comp: Any) -> None:
    for text in ("Please don't stop", "unstoppable", "hello"):
        result = await comp.inbound(text)
        assert "keyword" not in result
    assert comp.rows(suppressions) == []
    stored = comp.rows(inbound_messages)
    assert len(stored) == 3
    assert {r["keyword"] for r in stored} == {None}


async def test_inbound_row_records_its_keyword(api: Any, comp: Any) -> None:
    result = await comp.inbound("UNSUBSCRIBE")
    row = comp.rows(inbound_messages, inbound_messages.c.id == result["id"])[0]
    assert row["keyword"] == "opt_out"


async def test_account_keywords_extend_opt_out_and_replace_opt_in(api: Any, comp: Any) -> None:
    response = await api.client.patch(
        "/api/v1/account/policy",
        json={"keywords": {"optOut": ["arret"], "optIn": ["RESUME"]}},
        headers=api.headers(),
    )
    assert response.status_code == 200, response.text
    assert (await comp.inbound("Arret"))["keyword"] == "opt_out"
    assert "keyword" not in await comp.inbound("yes")  # YES is no longer an opt-in word
    assert len(comp.rows(suppressions)) == 1
    assert (await comp.inbound("resume"))["keyword"] == "opt_in"
    assert comp.rows(suppressions) == []
    assert (await comp.inbound("STOP", phone=OTHER))["keyword"] == "opt_out"  # never removed


async def test_stop_while_a_message_waits_stops_it_at_submit(api: Any, comp: Any) -> None:
    later = api.runtime.now().replace(microsecond=0)
    response = await api.send(to=PHONE, scheduledFor=(later + timedelta(hours=2)).isoformat())
    assert response.json()["status"] == "scheduled"
    await comp.inbound("STOP")
    api.runtime.clock.advance(hours=3)
    await api.drain()
    message = await comp.message(response.json()["id"])
    assert message["recipients"][0]["status"] == "rejected"
    assert message["recipients"][0]["errorCode"] == "recipient_opted_out"


async def test_suppression_list_and_removal(api: Any, comp: Any) -> None:
    await comp.inbound("STOP")
    listed = await api.client.get("/api/v1/suppressions", headers=api.headers())
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 1
    entry = body["suppressions"][0]
    assert entry["phone"] == PHONE
    assert entry["reason"] == "opt_out"
    assert entry["source"] == "keyword"

    removed = await api.client.delete(f"/api/v1/suppressions/{PHONE}", headers=api.headers())
    assert removed.status_code == 200, removed.text
    again = await api.client.delete(f"/api/v1/suppressions/{PHONE}", headers=api.headers())
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_found"
    assert (await api.send(to=PHONE)).json()["recipients"][0]["status"] == "queued"
    assert len(comp.rows(audit_log, audit_log.c.action == "suppression.removed")) == 1


async def test_suppressions_are_per_account(api: Any, comp: Any) -> None:
    await comp.inbound("STOP")
    _, other_key = api.new_account("other")
    response = await api.send(key=other_key, to=PHONE)
    assert response.json()["recipients"][0]["status"] == "queued"
    listed = await api.client.get("/api/v1/suppressions", headers=api.headers(other_key))
    assert listed.json()["total"] == 0
