"""Data-subject rights for one phone number: export everything held, or erase it.

A number is found by its keyed tokens (see ``_subjects``), never by scanning plaintext. Erasure
deletes what exists only because of the person (inbound messages, consents, webhook deliveries)
and anonymises what the account needs for its records (message statuses, counts and costs): the
number is removed and the row is unlinked from every token. Message text shared with another,
non-erased recipient is kept for them. An opted-out person stays on the suppression list by
keyed index alone, so they are never messaged again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from msgine.server.audit import Actor, record
from msgine.server.compliance import _consents, _suppressions
from msgine.server.compliance._consents import MODES
from msgine.server.compliance._scrub import flush_log, zero_freed_space
from msgine.server.compliance._subjects import UNLINKED, subject_indexes
from msgine.server.crypto import Vault
from msgine.server.events import iso
from msgine.server.messages import decrypt_phone
from msgine.server.runtime import Runtime
from msgine.server.storage import (
    consents,
    events,
    idempotency_keys,
    inbound_messages,
    messages,
    recipients,
    webhook_attempts,
    webhook_deliveries,
)

#: The modes a request covers: the caller's own through the API, both for the operator.
Modes = Sequence[str]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def _decrypt(vault: Vault, blob: bytes | None, table: str, column: str, row_id: str) -> str | None:
    if blob is None:
        return None
    return vault.decrypt_str(blob, table=table, column=column, row_id=row_id)


# --- export -------------------------------------------------------------------------------


def _messages(
    conn: sa.Connection, vault: Vault, account_id: str, indexes: Sequence[str], modes: Modes
) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(
            recipients,
            messages.c.type,
            messages.c.sender,
            messages.c.content,
            messages.c.segments,
            messages.c.created_at,
        )
        .join(messages, messages.c.id == recipients.c.message_id)
        .where(
            recipients.c.account_id == account_id,
            recipients.c.phone_index.in_(indexes),
            messages.c.mode.in_(list(modes)),
        )
        .order_by(messages.c.created_at, recipients.c.id)
    ).mappings()
    return [
        {
            "id": r["message_id"],
            "recipientId": r["id"],
            "type": r["type"],
            "from": r["sender"],
            "to": decrypt_phone(vault, r),
            "content": _decrypt(vault, r["content"], "messages", "content", r["message_id"]),
            "status": r["status"],
            "errorCode": r["error_code"],
            "segments": r["segments"],
            "createdAt": _iso(r["created_at"]),
            "sentAt": _iso(r["sent_at"]),
            "deliveredAt": _iso(r["delivered_at"]),
            "failedAt": _iso(r["failed_at"]),
        }
        for r in rows
    ]


def _inbound(
    conn: sa.Connection, vault: Vault, account_id: str, indexes: Sequence[str], modes: Modes
) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(inbound_messages)
        .where(
            inbound_messages.c.account_id == account_id,
            inbound_messages.c.phone_index.in_(indexes),
            inbound_messages.c.mode.in_(list(modes)),
        )
        .order_by(inbound_messages.c.received_at, inbound_messages.c.id)
    ).mappings()
    return [
        {
            "id": r["id"],
            "from": _decrypt(vault, r["phone"], "inbound_messages", "phone", r["id"]),
            "to": r["to_number"],
            "text": _decrypt(vault, r["body"], "inbound_messages", "body", r["id"]),
            "keyword": r["keyword"],
            "receivedAt": _iso(r["received_at"]),
        }
        for r in rows
    ]


def _events(
    conn: sa.Connection, vault: Vault, account_id: str, indexes: Sequence[str], modes: Modes
) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(events)
        .where(
            events.c.account_id == account_id,
            events.c.phone_index.in_(indexes),
            events.c.mode.in_(list(modes)),
        )
        .order_by(events.c.created_at, events.c.id)
    ).mappings()
    found = []
    for r in rows:
        body = _decrypt(vault, r["body"], "events", "body", r["id"])
        found.append(
            {
                "id": r["id"],
                "type": r["type"],
                "messageId": r["message_id"],
                "createdAt": _iso(r["created_at"]),
                "body": None if body is None else json.loads(body),
            }
        )
    return found


def _deliveries(conn: sa.Connection, event_ids: Sequence[str]) -> list[dict[str, Any]]:
    if not event_ids:
        return []
    rows = conn.execute(
        sa.select(webhook_deliveries)
        .where(webhook_deliveries.c.event_id.in_(event_ids))
        .order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.id)
    ).mappings()
    return [
        {
            "id": r["id"],
            "eventId": r["event_id"],
            "endpointId": r["endpoint_id"],
            "url": r["url"],
            "status": r["status"],
            "attempts": r["attempts"],
            "createdAt": _iso(r["created_at"]),
            "completedAt": _iso(r["completed_at"]),
        }
        for r in rows
    ]


def export_subject(
    conn: sa.Connection, vault: Vault, account_id: str, phone: str, modes: Modes = MODES
) -> dict[str, Any]:
    """Everything this account holds about ``phone`` in ``modes``, decrypted."""
    indexes = subject_indexes(vault, account_id, phone)
    found_events = _events(conn, vault, account_id, indexes, modes)
    suppression = (_suppressions.find(conn, vault, account_id, m, indexes[0]) for m in modes)
    return {
        "accountId": account_id,
        "messages": _messages(conn, vault, account_id, indexes, modes),
        "inboundMessages": _inbound(conn, vault, account_id, indexes, modes),
        "consents": _consents.history(conn, vault, account_id, indexes, modes),
        "suppression": next((s for s in suppression if s is not None), None),
        "events": found_events,
        "webhookDeliveries": _deliveries(conn, [e["id"] for e in found_events]),
    }


def holds_anything(export: dict[str, Any]) -> bool:
    return any(export[k] for k in export if k != "accountId")


def export_counts(export: dict[str, Any]) -> dict[str, int]:
    """Sizes only, for the audit trail."""
    return {
        k: (len(v) if isinstance(v, list) else int(v is not None))
        for k, v in export.items()
        if k != "accountId"
    }


# --- erasure ------------------------------------------------------------------------------


def _ids(conn: sa.Connection, query: sa.Select[Any]) -> list[Any]:
    return list(conn.execute(query).scalars())


def _erase_recipients(
    conn: sa.Connection, account_id: str, indexes: Sequence[str], now: datetime, modes: Modes
) -> tuple[int, list[str]]:
    """Remove the number from its recipients; returns (count, ids of the messages touched)."""
    found = conn.execute(
        sa.select(recipients.c.id, recipients.c.message_id)
        .join(messages, messages.c.id == recipients.c.message_id)
        .where(
            recipients.c.account_id == account_id,
            recipients.c.phone_index.in_(indexes),
            messages.c.mode.in_(list(modes)),
        )
    ).all()
    message_ids = sorted({row.message_id for row in found})
    count = 0
    if found:
        count = conn.execute(
            sa.update(recipients)
            .where(recipients.c.id.in_([row.id for row in found]))
            .values(phone=None, phone_index=UNLINKED)
        ).rowcount
    if not message_ids:
        return 0, []
    still_addressed = sa.select(recipients.c.message_id).where(
        recipients.c.message_id.in_(message_ids), recipients.c.phone.is_not(None)
    )
    conn.execute(
        sa.update(messages)
        .where(messages.c.id.in_(message_ids), messages.c.id.not_in(still_addressed))
        .values(content=None, purged_at=now)
    )
    # A stored idempotent response repeats the numbers and text of its message.
    conn.execute(sa.delete(idempotency_keys).where(idempotency_keys.c.message_id.in_(message_ids)))
    return int(count), message_ids


def _erase_events(
    conn: sa.Connection, account_id: str, indexes: Sequence[str], now: datetime, modes: Modes
) -> tuple[int, int]:
    """Drop event bodies and their webhook deliveries; returns (events, deliveries)."""
    event_ids = _ids(
        conn,
        sa.select(events.c.id).where(
            events.c.account_id == account_id,
            events.c.phone_index.in_(indexes),
            events.c.mode.in_(list(modes)),
        ),
    )
    if not event_ids:
        return 0, 0
    delivery_ids = _ids(
        conn, sa.select(webhook_deliveries.c.id).where(webhook_deliveries.c.event_id.in_(event_ids))
    )
    if delivery_ids:
        conn.execute(
            sa.delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(delivery_ids))
        )
        conn.execute(sa.delete(webhook_deliveries).where(webhook_deliveries.c.id.in_(delivery_ids)))
    conn.execute(
        sa.update(events)
        .where(events.c.id.in_(event_ids))
        .values(body=None, phone_index=None, purged_at=now)
    )
    return len(event_ids), len(delivery_ids)


def erase_subject(
    conn: sa.Connection,
    vault: Vault,
    account_id: str,
    phone: str,
    now: datetime,
    modes: Modes = MODES,
) -> dict[str, Any]:
    """Erase ``phone`` from this account's ``modes``; returns counts (never the number)."""
    zero_freed_space(conn)
    indexes = subject_indexes(vault, account_id, phone)
    recipient_count, message_ids = _erase_recipients(conn, account_id, indexes, now, modes)
    event_count, delivery_count = _erase_events(conn, account_id, indexes, now, modes)
    inbound_count = conn.execute(
        sa.delete(inbound_messages).where(
            inbound_messages.c.account_id == account_id,
            inbound_messages.c.phone_index.in_(indexes),
            inbound_messages.c.mode.in_(list(modes)),
        )
    ).rowcount
    consent_count = conn.execute(
        sa.delete(consents).where(
            consents.c.account_id == account_id,
            consents.c.phone_index.in_(indexes),
            consents.c.mode.in_(list(modes)),
        )
    ).rowcount
    kept = _suppressions.forget_number(conn, account_id, indexes[0], modes)
    return {
        "accountId": account_id,
        "messages": len(message_ids),
        "recipients": recipient_count,
        "inboundMessages": int(inbound_count),
        "consents": int(consent_count),
        "events": event_count,
        "webhookDeliveries": delivery_count,
        "suppressionKept": kept,
    }


# --- requests -----------------------------------------------------------------------------


def export_number(
    conn: sa.Connection,
    vault: Vault,
    account_ids: Sequence[str],
    phone: str,
    *,
    actor: Actor,
    now: datetime,
    modes: Modes = MODES,
) -> list[dict[str, Any]]:
    """Export from each account and audit it (sizes only); run in a write transaction."""
    found = []
    for account_id in account_ids:
        export = export_subject(conn, vault, account_id, phone, modes)
        record(
            conn,
            vault,
            actor,
            "privacy.exported",
            now=now,
            account_id=account_id,
            details=export_counts(export),
        )
        found.append(export)
    return found


def preview_erase(
    conn: sa.Connection, vault: Vault, account_ids: Sequence[str], phone: str
) -> list[dict[str, Any]]:
    """What erasing ``phone`` would touch, as counts per account that holds anything about it
    (``privacy erase --dry-run`` and the confirmation). Reads only and records nothing: the
    erasure that may follow is what gets audited."""
    found = []
    for account_id in account_ids:
        export = export_subject(conn, vault, account_id, phone)
        if holds_anything(export):
            found.append({"accountId": account_id, **export_counts(export)})
    return found


def erase_number(
    runtime: Runtime,
    account_ids: Sequence[str],
    phone: str,
    *,
    actor: Actor,
    modes: Modes = MODES,
) -> list[dict[str, Any]]:
    """Erase from each account in one transaction with its audit entries, then clear the
    embedded database's log of the old values. Blocking: call from a thread in async code."""
    now = runtime.now()

    def apply(conn: sa.Connection) -> list[dict[str, Any]]:
        results = []
        for account_id in account_ids:
            counts = erase_subject(conn, runtime.vault, account_id, phone, now, modes)
            details = {k: v for k, v in counts.items() if k != "accountId"}
            record(
                conn,
                runtime.vault,
                actor,
                "privacy.erased",
                now=now,
                account_id=account_id,
                details=details,
            )
            results.append(counts)
        return results

    results = runtime.db.write(apply)
    flush_log(runtime.db)
    return results
