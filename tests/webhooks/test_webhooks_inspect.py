"""What people see of webhooks (the console's page): a message's deliveries with their attempts,
redacted request excerpts, and a test event sent to one endpoint (through the API route and
the service the console calls)."""

from __future__ import annotations

import json
from typing import Any

from webhooks_helpers import create_endpoint, standard_verifies

from msgine.server.audit import Actor
from msgine.server.webhooks import (
    message_deliveries,
    redact,
    request_excerpts,
    send_test_event,
)
from webhook_receiver import Receiver, Reply

NUMBER = "+256701521269"


async def test_a_messages_deliveries_carry_their_attempts_and_redacted_requests(
    api: Any, receiver: Receiver
) -> None:
    receiver.script("/hook", Reply(500, body=b"try later"))
    await create_endpoint(api, receiver.url(), events=["message.sent"])
    sent = (await api.send(to=NUMBER, message="secret words")).json()
    await api.drain()
    found = api.runtime.db.read(
        lambda conn: message_deliveries(conn, api.account_id, sent["id"], "test")
    )
    [delivery] = found
    assert delivery["type"] == "message.sent"
    [attempt] = delivery["attempt_log"]
    assert attempt["status_code"] == 500
    assert attempt["excerpt"] == "try later"
    excerpts = api.runtime.db.read(
        lambda conn: request_excerpts(conn, api.runtime.vault, [delivery["event_id"]])
    )
    shown = excerpts[delivery["event_id"]]
    assert shown is not None and sent["id"] in shown
    assert NUMBER not in shown and "+256 70* *** 269" in shown
    # Another account, or the other mode, sees none of them.
    other = api.runtime.db.read(lambda conn: message_deliveries(conn, "acc_other", sent["id"]))
    live = api.runtime.db.read(
        lambda conn: message_deliveries(conn, api.account_id, sent["id"], "live")
    )
    assert other == [] and live == []


def test_redaction_masks_numbers_and_hides_text() -> None:
    document = {
        "to": NUMBER,
        "from": "MyApp",
        "data": {"message": "my PIN is 1234", "note": f"call {NUMBER}", "n": 3},
        "list": [NUMBER],
    }
    shown = redact(document)
    assert shown["to"] == "+256 70* *** 269"
    assert shown["from"] == "MyApp"
    assert shown["data"] == {"message": "[14 characters]", "note": "call +256 70* *** 269", "n": 3}
    assert shown["list"] == ["+256 70* *** 269"]
    assert NUMBER not in json.dumps(shown)


async def test_a_test_event_goes_to_that_endpoint_only_and_is_audited(
    api: Any, receiver: Receiver
) -> None:
    target = await create_endpoint(api, receiver.url(), events=["message.sent"])
    await create_endpoint(api, receiver.url("/other"))
    answer = await api.client.post(
        f"/api/v1/webhooks/{target['id']}/test",
        json={"event": "message.failed"},
        headers=api.headers(),
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["event"] == "message.failed"  # sent whatever the endpoint subscribes to
    await api.drain()
    [hit] = receiver.wait_for(1)
    assert standard_verifies(target["secret"], hit)
    assert hit.event["event"] == "message.failed" and hit.event["data"]["test"] is True
    assert receiver.hits_for("/other") == []
    now = api.runtime.now()
    row = api.runtime.db.write(
        lambda conn: send_test_event(
            conn,
            api.runtime.vault,
            Actor("console:someone"),
            account_id=api.account_id,
            endpoint_id=target["id"],
            event_type="message.delivered",
            now=now,
        )
    )
    assert row["status"] == "pending" and row["type"] == "message.delivered"
    audit = await api.client.get("/api/v1/audit", headers=api.headers())
    actions = [(e["action"], e["actor"]) for e in audit.json()["entries"]]
    assert ("webhook.test_event_sent", "console:someone") in actions


async def test_a_test_event_is_refused_clearly(api: Any, receiver: Receiver) -> None:
    target = await create_endpoint(api, receiver.url())
    unknown = await api.client.post(
        f"/api/v1/webhooks/{target['id']}/test", json={"event": "nope"}, headers=api.headers()
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "invalid_request"
    missing = await api.client.post("/api/v1/webhooks/we_missing/test", headers=api.headers())
    assert missing.status_code == 404
    await api.client.patch(
        f"/api/v1/webhooks/{target['id']}", json={"enabled": False}, headers=api.headers()
    )
    disabled = await api.client.post(f"/api/v1/webhooks/{target['id']}/test", headers=api.headers())
    assert disabled.status_code == 400
    assert disabled.json()["error"]["details"]["reason"] == "endpoint_disabled"
