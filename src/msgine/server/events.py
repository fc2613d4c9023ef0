"""Events: written in the same transaction as the change that caused them, with one pending
webhook delivery per subscribed endpoint (the webhook outbox).

Every event has the mode of what caused it: its body says ``"livemode": true|false`` and it
goes only to endpoints registered in that mode (a test key's sends, simulated inbound and
test-mode opt-outs never reach a live endpoint, nor live events a test one).

The body is serialised once, here, encrypted at rest, and every delivery attempt sends exactly
these bytes, so a signature can be checked against what was stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from msgine.server._ids import new_id
from msgine.server.crypto import Vault
from msgine.server.storage import Direct, events, webhook_deliveries, webhook_endpoints
from msgine.webhooks import encode_body

MESSAGE_EVENTS = ("message.sent", "message.delivered", "message.failed")
EVENT_TYPES = (
    *MESSAGE_EVENTS,
    "message.received",
    "contact.opted_out",
    "contact.opted_in",
    "key.revoked",
)


def iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Direct statements: every status change of every recipient emits an event. Written at once,
# never deferred to the end of the group commit (Direct.defer): an erasure that runs later in
# the same transaction must find the event to erase the number in it.
_INSERT_EVENT = Direct(events.insert())
_INSERT_DELIVERY = Direct(webhook_deliveries.insert())
_SUBSCRIBERS = Direct(
    sa.select(webhook_endpoints.c.id, webhook_endpoints.c.events).where(
        webhook_endpoints.c.account_id == sa.bindparam("account_id"),
        webhook_endpoints.c.mode == sa.bindparam("mode"),
        webhook_endpoints.c.enabled.is_(True),
    )
)


def emit(
    conn: sa.Connection,
    vault: Vault,
    *,
    account_id: str,
    mode: str,
    event_type: str,
    now: datetime,
    fields: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    message_id: str | None = None,
    recipient_id: str | None = None,
    phone_index: str | None = None,
    callback_url: str | None = None,
    deliver: bool = True,
    endpoint_id: str | None = None,
) -> str:
    """Store one event and queue its deliveries to the endpoints of its ``mode``; returns the
    event id. ``deliver=False`` stores it for listen sessions only (a triggered test event):
    no endpoint gets it. ``endpoint_id`` sends it to that one endpoint only (a test event a
    person asked for)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    if mode not in ("live", "test"):
        raise ValueError("an event's mode is 'live' or 'test'")
    event_id = new_id("evt")
    document: dict[str, Any] = {"id": event_id, "event": event_type, "livemode": mode == "live"}
    document.update(fields or {})
    document["timestamp"] = iso(now)
    document["data"] = data or {}
    body = encode_body(document)
    _INSERT_EVENT.execute(
        conn,
        {
            "id": event_id,
            "account_id": account_id,
            "mode": mode,
            "type": event_type,
            "message_id": message_id,
            "recipient_id": recipient_id,
            "phone_index": phone_index,
            "body": vault.encrypt(body, table="events", column="body", row_id=event_id),
            "created_at": now,
        },
    )
    if not deliver:
        return event_id
    targets: list[dict[str, Any]] = (
        [{"endpoint_id": endpoint_id, "url": None}]
        if endpoint_id is not None
        else [
            {"endpoint_id": endpoint["id"], "url": None}
            for endpoint in _SUBSCRIBERS.all(conn, {"account_id": account_id, "mode": mode})
            if not endpoint["events"] or event_type in endpoint["events"]
        ]
    )
    if callback_url and event_type in MESSAGE_EVENTS:
        targets.append({"endpoint_id": None, "url": callback_url})
    if targets:
        _INSERT_DELIVERY.executemany(
            conn,
            [
                {
                    "id": new_id("whd"),
                    "account_id": account_id,
                    "event_id": event_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    **target,
                }
                for target in targets
            ],
        )
    return event_id


def message_received(
    conn: sa.Connection, vault: Vault, inbound: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Inbound handler: raise ``message.received`` for one stored inbound SMS.

    Registered on the app's inbound handlers, so it runs in the transaction that stores the
    inbound message: the event exists exactly when the message does.
    """
    emit(
        conn,
        vault,
        account_id=inbound["account_id"],
        mode=inbound["mode"],
        event_type="message.received",
        now=now,
        fields={
            "status": "received",
            "messageId": inbound["id"],
            "to": inbound.get("to_number"),
            "from": inbound["from"],
            "sid": inbound["id"],
        },
        data={"message": inbound["text"], "receivedAt": iso(inbound["received_at"])},
        phone_index=inbound["phone_index"],
    )
    return {}


def contact_changed(
    conn: sa.Connection,
    vault: Vault,
    *,
    account_id: str,
    mode: str,
    opted_out: bool,
    phone: str,
    phone_index: str,
    now: datetime,
    source: str,
    keyword: str | None = None,
) -> str:
    """``contact.opted_out`` / ``contact.opted_in``, for the compliance code to call in the
    transaction that changes the suppression list. ``source`` names what caused the change
    (``keyword``, ``api``...), never a secret."""
    data: dict[str, Any] = {"source": source}
    if keyword:
        data["keyword"] = keyword
    return emit(
        conn,
        vault,
        account_id=account_id,
        mode=mode,
        event_type="contact.opted_out" if opted_out else "contact.opted_in",
        now=now,
        fields={"status": "opted_out" if opted_out else "opted_in", "to": None, "from": phone},
        data=data,
        phone_index=phone_index,
    )


def event_body(conn: sa.Connection, vault: Vault, event_id: str) -> bytes | None:
    blob = conn.execute(sa.select(events.c.body).where(events.c.id == event_id)).scalar()
    if blob is None:
        return None
    return vault.decrypt(blob, table="events", column="body", row_id=event_id)
