"""Events: written in the same transaction as the change that caused them, with one pending
webhook delivery per subscribed endpoint (the webhook outbox).

An event is stored only when something will receive it (its :class:`Audience`): an enabled
endpoint of its account and mode subscribed to its type, the message's callback URL, or, for
test-mode events, an unexpired ``msgine webhooks listen`` session of the account. Nothing else
reads events: an event nobody receives would be about 800 bytes per status change kept for
nobody (docs/architecture.md, "Bytes per message"). The audience is read in the transaction
that raises the event (once per group-committed batch, forgotten when the batch changes an
endpoint or listen session), never cached across transactions: an endpoint or listen session
gets every event raised after its creation committed, and none raised before, as before.

Every event has the mode of what caused it: its body says ``"livemode": true|false`` and it
goes only to endpoints registered in that mode (a test key's sends, simulated inbound and
test-mode opt-outs never reach a live endpoint, nor live events a test one).

The body is serialised once, here, encrypted at rest, and every delivery attempt sends exactly
these bytes, so a signature can be checked against what was stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from msgine.server._ids import new_id
from msgine.server.crypto import Vault
from msgine.server.storage import (
    Direct,
    batch_memo,
    events,
    webhook_deliveries,
    webhook_endpoints,
    webhook_listeners,
)
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


# Direct statements: every status change of every recipient asks for its audience. Events are
# written at once, never deferred to the end of the group commit (Direct.defer): an erasure
# that runs later in the same transaction must find the event to erase the number in it.
_INSERT_EVENT = Direct(events.insert())
_INSERT_DELIVERY = Direct(webhook_deliveries.insert())
# One round trip: the enabled endpoints of the account and mode (id, subscribed types), and
# the expiry of each of the account's listen sessions (they follow test mode only).
_AUDIENCE = Direct(
    sa.union_all(
        sa.select(
            webhook_endpoints.c.id,
            webhook_endpoints.c.events,
            sa.type_coerce(sa.null(), webhook_listeners.c.expires_at.type).label("expires_at"),
        ).where(
            webhook_endpoints.c.account_id == sa.bindparam("account_id"),
            webhook_endpoints.c.mode == sa.bindparam("mode"),
            webhook_endpoints.c.enabled.is_(True),
        ),
        sa.select(sa.null(), sa.null(), webhook_listeners.c.expires_at).where(
            webhook_listeners.c.account_id == sa.bindparam("account_id"),
            sa.bindparam("mode") == "test",
        ),
    )
)
_AUDIENCE_MEMO = "event_audience"  # batch_memo entries: (_AUDIENCE_MEMO, account id, mode)


@dataclass(frozen=True, slots=True)
class Audience:
    """Who receives one event: false when nobody does, and then it is not stored."""

    endpoint_ids: tuple[str, ...] = ()
    callback_url: str | None = None
    listened: bool = False

    def __bool__(self) -> bool:
        return bool(self.endpoint_ids or self.callback_url or self.listened)


def audience(
    conn: sa.Connection,
    *,
    account_id: str,
    mode: str,
    event_type: str,
    now: datetime,
    callback_url: str | None = None,
) -> Audience:
    """The receivers of an event of ``event_type`` raised now: one query, read once per
    group-committed batch (``batch_memo``; a write that changes endpoints or listen sessions
    calls :func:`audience_changed`)."""
    memo = batch_memo(conn)
    key = (_AUDIENCE_MEMO, account_id, mode)
    rows: list[dict[str, Any]] | None = None if memo is None else memo.get(key)
    if rows is None:
        rows = _AUDIENCE.all(conn, {"account_id": account_id, "mode": mode})
        if memo is not None:
            memo[key] = rows
    endpoint_ids: list[str] = []
    listened = False
    for row in rows:
        if row["id"] is None:
            listened = listened or row["expires_at"] > now
        elif not row["events"] or event_type in row["events"]:
            endpoint_ids.append(row["id"])
    return Audience(
        endpoint_ids=tuple(endpoint_ids),
        callback_url=callback_url if event_type in MESSAGE_EVENTS else None,
        listened=listened,
    )


def audience_changed(conn: sa.Connection) -> None:
    """Forget the audiences read in this batch: an endpoint or listen session was created,
    changed or removed, and the batch's next event must see it."""
    memo = batch_memo(conn)
    if memo:
        for key in [key for key in memo if isinstance(key, tuple) and key[0] == _AUDIENCE_MEMO]:
            del memo[key]


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
    receivers: Audience | None = None,
) -> str | None:
    """Store one event and queue its deliveries to its audience; returns the event id, or None
    (nothing stored) when nobody receives it. ``receivers``: the audience, if the caller read
    it already (to skip building a body nobody gets). ``deliver=False`` is for listen sessions
    only (a triggered test event): no endpoint gets it, and without a session it is not
    stored. ``endpoint_id`` sends it to that one endpoint only (a test event a person asked
    for)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    if mode not in ("live", "test"):
        raise ValueError("an event's mode is 'live' or 'test'")
    if endpoint_id is not None:
        receivers = Audience(endpoint_ids=(endpoint_id,))
    elif receivers is None:
        receivers = audience(
            conn,
            account_id=account_id,
            mode=mode,
            event_type=event_type,
            now=now,
            callback_url=callback_url,
        )
    if not deliver:
        receivers = Audience(listened=receivers.listened)
    if not receivers:
        return None
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
    targets: list[dict[str, Any]] = [
        {"endpoint_id": endpoint, "url": None} for endpoint in receivers.endpoint_ids
    ]
    if receivers.callback_url:
        targets.append({"endpoint_id": None, "url": receivers.callback_url})
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
) -> str | None:
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
