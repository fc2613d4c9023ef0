"""A message's overall status is honest: it never reads "delivered" while a recipient failed.

The rule lives in ``msgine.server.messages.aggregate_status`` (and the docs' "Message status").
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from msgine import AsyncMsGineClient
from msgine.server.messages import aggregate_status, recipient_counts

DELIVERS = "+256701521269"
FAILS = "+256701521999"  # the simulator fails numbers ending in 999


@pytest.mark.parametrize(
    ("statuses", "overall"),
    [
        (["delivered"], "delivered"),
        (["delivered", "delivered"], "delivered"),
        (["delivered", "failed"], "partly_delivered"),
        (["delivered", "rejected"], "partly_delivered"),
        (["failed", "rejected"], "failed"),
        (["failed"], "failed"),
        (["rejected", "rejected"], "rejected"),
        ([], "rejected"),
        (["delivered", "sent"], "sent"),
        (["failed", "queued", "sent"], "queued"),
        (["scheduled", "delivered"], "scheduled"),
    ],
)
def test_the_rule(statuses: list[str], overall: str) -> None:
    assert aggregate_status(statuses) == overall


def test_counts_follow_status_order() -> None:
    counts = recipient_counts(["failed", "delivered", "failed", "sent"])
    assert counts == {"sent": 1, "delivered": 1, "failed": 2}
    assert list(counts) == ["sent", "delivered", "failed"]


async def test_one_delivered_one_failed_is_partly_delivered(api: Any) -> None:
    sent = await api.send(to=[DELIVERS, FAILS])
    assert sent.status_code == 201, sent.text
    assert sent.json()["recipientCounts"] == {"queued": 2}
    await api.drain()
    got = await api.client.get(f"/api/v1/messages/{sent.json()['id']}", headers=api.headers())
    body = got.json()
    assert body["status"] == "partly_delivered"
    assert body["recipientCounts"] == {"delivered": 1, "failed": 1}
    listed = await api.client.get("/api/v1/messages?status=partly_delivered", headers=api.headers())
    assert listed.status_code == 200, listed.text
    assert [m["id"] for m in listed.json()["messages"]] == [body["id"]]
    assert listed.json()["messages"][0]["recipientCounts"] == {"delivered": 1, "failed": 1}


@pytest.mark.usefixtures("every_event_stored")  # what events say, not who gets them
async def test_the_events_carry_the_honest_message_status(api: Any) -> None:
    """No status event says the message was delivered; the last one to finish says partially."""
    sent = await api.send(to=[DELIVERS, FAILS])
    await api.drain()
    message_id = sent.json()["id"]
    statuses = await _message_statuses_in_events(api, message_id)
    assert "partly_delivered" in statuses
    assert "delivered" not in statuses, statuses


async def _message_statuses_in_events(api: Any, message_id: str) -> list[str]:
    import json

    import sqlalchemy as sa

    from msgine.server.storage._tables import events

    runtime = api.runtime
    rows = runtime.db.read(
        lambda conn: conn.execute(
            sa.select(events.c.id, events.c.body).where(events.c.message_id == message_id)
        ).all()
    )
    bodies = [
        json.loads(runtime.vault.decrypt(blob, table="events", column="body", row_id=event_id))
        for event_id, blob in rows
    ]
    return [b["data"]["messageStatus"] for b in bodies if b["event"] != "message.sent"]


async def test_all_delivered_stays_delivered_and_one_recipient_keeps_its_status(api: Any) -> None:
    both = await api.send(to=[DELIVERS, "+256701521270"])
    alone = await api.send(to=FAILS)
    await api.drain()
    for sent, status, counts in (
        (both, "delivered", {"delivered": 2}),
        (alone, "failed", {"failed": 1}),
    ):
        got = await api.client.get(f"/api/v1/messages/{sent.json()['id']}", headers=api.headers())
        assert got.json()["status"] == status
        assert got.json()["recipientCounts"] == counts


async def test_the_sdk_reports_the_counts(api: Any) -> None:
    transport = httpx.ASGITransport(app=api.app)
    async with AsyncMsGineClient(
        api.key,
        base_url="http://testserver/api/v1",
        allow_insecure_http=True,
        transport=transport,
    ) as client:
        sent = await client.sms.send(f"{DELIVERS}, {FAILS}", "Hi")
        assert sent.recipient_counts == {"queued": 2}
        await api.drain()
        got = await client.messages.get(sent.id)
    assert got.status == "partly_delivered"
    assert got.recipient_counts == {"delivered": 1, "failed": 1}
