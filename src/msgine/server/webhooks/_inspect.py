"""What people look at when a webhook misbehaves: the deliveries of one message, what each
delivery sent (a redacted excerpt), and a test event sent to one endpoint on request.

An excerpt is for a screen: numbers are masked and message text replaced by its length, so
looking at deliveries shows no personal data; signatures and secrets are never part of it (the
body is what was signed, the headers are named, not shown).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa

from msgine.server import events as event_store
from msgine.server.audit import Actor, record
from msgine.server.crypto import Vault
from msgine.server.errors import InvalidRequest
from msgine.server.messages import mask_number
from msgine.server.storage import events, webhook_deliveries
from msgine.server.webhooks._endpoints import (
    DELIVERIES,
    find_delivery,
    get_endpoint,
    with_attempts,
)
from msgine.server.webhooks._listen import sample_event

EXCERPT_CHARS: Final = 600
#: The headers every delivery carries (values are per attempt; the signatures are not shown).
DELIVERY_HEADERS: Final = (
    "content-type: application/json",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-msgine-signature",
)
_NUMBER = re.compile(r"\+[1-9][0-9]{6,15}")
_TEXT_FIELDS: Final = frozenset({"message", "content", "text", "body"})


def redact(value: Any, key: str | None = None) -> Any:
    """A copy of an event document fit for a screen: numbers masked, text as its length."""
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if key in _TEXT_FIELDS:
            return f"[{len(value)} characters]"
        return _NUMBER.sub(lambda m: mask_number(m.group(0)), value)
    return value


def request_excerpts(
    conn: sa.Connection, vault: Vault, event_ids: Sequence[str]
) -> dict[str, str | None]:
    """Each event's body as delivered, redacted and cut to ``EXCERPT_CHARS``; None once the
    retention policy purged it."""
    wanted = list(dict.fromkeys(event_ids))
    if not wanted:
        return {}
    rows = conn.execute(sa.select(events.c.id, events.c.body).where(events.c.id.in_(wanted)))
    found: dict[str, str | None] = dict.fromkeys(wanted)
    for event_id, blob in rows:
        if blob is None:
            continue
        body = vault.decrypt(blob, table="events", column="body", row_id=event_id)
        document = redact(json.loads(body))
        found[event_id] = json.dumps(document, ensure_ascii=False, indent=1)[:EXCERPT_CHARS]
    return found


def message_deliveries(
    conn: sa.Connection, account_id: str, message_id: str, mode: str | None = None
) -> list[dict[str, Any]]:
    """Every webhook delivery of the message's events (to endpoints and to its callback URL),
    oldest first, each with its attempts."""
    query = DELIVERIES.where(events.c.message_id == message_id, events.c.account_id == account_id)
    if mode is not None:
        query = query.where(events.c.mode == mode)
    query = query.order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.id)
    return with_attempts(conn, [dict(r) for r in conn.execute(query).mappings()])


def send_test_event(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    *,
    account_id: str,
    endpoint_id: str,
    event_type: str,
    now: datetime,
    mode: str | None = None,
) -> dict[str, Any]:
    """Queue a made-up ``event_type`` (a fictional number, ids of no real message, ``data.test``
    true) to this one endpoint, whatever it subscribes to; returns the new delivery."""
    endpoint = get_endpoint(conn, account_id, endpoint_id, mode)
    if not endpoint["enabled"]:
        raise InvalidRequest(
            "The endpoint is disabled; enable it before sending a test event.",
            details={"reason": "endpoint_disabled"},
        )
    if event_type not in event_store.EVENT_TYPES:
        raise InvalidRequest(
            "Unknown event type.",
            details={"field": "event", "allowed": list(event_store.EVENT_TYPES)},
        )
    fields, data = sample_event(event_type)
    event_id = event_store.emit(
        conn,
        vault,
        account_id=account_id,
        mode=endpoint["mode"],
        event_type=event_type,
        now=now,
        fields=fields,
        data={**data, "test": True},
        endpoint_id=endpoint_id,
    )
    record(
        conn,
        vault,
        actor,
        "webhook.test_event_sent",
        now=now,
        target=endpoint_id,
        account_id=account_id,
        details={"event": event_type, "eventId": event_id},
    )
    return find_delivery(conn, webhook_deliveries.c.event_id == event_id)
