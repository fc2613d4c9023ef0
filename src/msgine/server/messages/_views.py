"""How messages look in API responses (camelCase, the contract's fields)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa

from msgine.server._memo import remember_last
from msgine.server.crypto import Vault
from msgine.server.storage._tables import messages, recipients

CHANNEL = "sms"


# A message's response shows the same ``now`` several times (see remember_last).
@remember_last
def iso(value: datetime | None) -> str | None:
    return (
        None if value is None else value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


#: Every value a message's ``status`` can take: the contract's seven, then the two this gateway
#: adds (``unknown``: a carrier's answer lost in a crash, see docs/carriers.md; and
#: ``partly_delivered``, see ``aggregate_status``; both fit the 16-character status column, so
#: adding them rebuilt no table).
MessageStatus = Literal[
    "pending",
    "scheduled",
    "queued",
    "sent",
    "unknown",
    "delivered",
    "failed",
    "rejected",
    "partly_delivered",
]
MESSAGE_STATUSES: tuple[str, ...] = get_args(MessageStatus)
_WAITING = ("pending", "scheduled", "queued", "sent", "unknown")


def aggregate_status(statuses: Sequence[str]) -> str:
    """One status for the whole message from its recipients' statuses. THE rule (the docs'
    "Message status" section describes this function):

    - while any recipient is on its way, the earliest such stage (pending, scheduled, queued,
      sent, then unknown: sent in a crash, settled by a later receipt);
    - once all are final: ``delivered`` if every recipient was delivered; ``partly_delivered``
      if some were delivered and others failed or were rejected; ``failed`` if none was
      delivered and at least one failed; ``rejected`` if all were rejected (or there are none).

    So a message never reads ``delivered`` while one of its recipients did not get it; the
    per-status counts (``recipientCounts``) say how many of each.
    """
    present = set(statuses)
    if not present or present == {"rejected"}:
        return "rejected"
    for waiting in _WAITING:
        if waiting in present:
            return waiting
    if "delivered" in present:
        return "delivered" if present == {"delivered"} else "partly_delivered"
    return "failed"


def recipient_counts(statuses: Sequence[str]) -> dict[str, int]:
    """How many recipients are in each status (only the statuses present), in status order."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return {s: counts[s] for s in MESSAGE_STATUSES if s in counts} | counts


def decrypt_phone(vault: Vault, row: Mapping[Any, Any]) -> str | None:
    blob = row["phone"]
    if blob is None:
        return None
    return vault.decrypt_str(blob, table="recipients", column="phone", row_id=row["id"])


def recipient_phone(
    conn: sa.Connection, vault: Vault, account_id: str, recipient_id: str
) -> str | None:
    """One recipient's number, if the recipient is the account's and its number is still
    stored (retention and erasure remove it); for the console's audited reveal."""
    row = conn.execute(
        sa.select(recipients.c.id, recipients.c.phone).where(
            recipients.c.id == recipient_id, recipients.c.account_id == account_id
        )
    ).first()
    return decrypt_phone(vault, row._mapping) if row is not None else None


def decrypt_content(vault: Vault, row: Mapping[Any, Any]) -> str | None:
    blob = row["content"]
    if blob is None:
        return None
    return vault.decrypt_str(blob, table="messages", column="content", row_id=row["id"])


def render(
    message: Mapping[Any, Any], rcpts: Sequence[Mapping[Any, Any]], vault: Vault
) -> dict[str, Any]:
    """A stored message, decrypted."""
    return present(
        message,
        rcpts,
        phones=[decrypt_phone(vault, r) for r in rcpts],
        content=decrypt_content(vault, message),
    )


def present(
    message: Mapping[Any, Any],
    rcpts: Sequence[Mapping[Any, Any]],
    *,
    phones: Sequence[str | None],
    content: str | None,
) -> dict[str, Any]:
    """A message whose plaintext the caller already holds (e.g. the one just accepted)."""
    view_recipients = []
    sent = [r["sent_at"] for r in rcpts if r.get("sent_at") is not None]
    for phone, r in zip(phones, rcpts, strict=True):
        item: dict[str, Any] = {"to": phone, "status": r["status"]}
        if r["error_code"]:
            item["errorCode"] = r["error_code"]
        if r["carrier_message_id"]:
            item["carrierMessageId"] = r["carrier_message_id"]
        item["updatedAt"] = iso(r["updated_at"])
        view_recipients.append(item)
    return {
        "id": message["id"],
        "sid": message["id"],
        "channel": CHANNEL,
        "type": message["type"],
        "to": list(phones),
        # MsGine's SDKs type it as a string: "" when the request named no sender (the
        # carrier then uses its own default sender ID).
        "from": message["sender"] or "",
        "content": content,
        "status": message["status"],
        "recipientCounts": recipient_counts([r["status"] for r in rcpts]),
        "cost": message["cost"],
        "currency": message["currency"],
        "segments": message["segments"],
        "encoding": message["encoding"],
        "scheduledFor": iso(message["scheduled_for"]),
        "scheduledAt": iso(message["scheduled_for"]),  # MsGine's SDKs' name for it
        # When a carrier first took one of its recipients; null before.
        "sentAt": iso(min(sent)) if sent else None,
        "callbackUrl": message["callback_url"],
        "createdAt": iso(message["created_at"]),
        "updatedAt": iso(message["updated_at"]),
        "recipients": view_recipients,
    }


def load(
    conn: sa.Connection, message_ids: Sequence[str]
) -> list[tuple[Mapping[Any, Any], list[Mapping[Any, Any]]]]:
    """Messages with their recipients, in the order of ``message_ids``."""
    if not message_ids:
        return []
    rows = {
        r["id"]: r
        for r in conn.execute(sa.select(messages).where(messages.c.id.in_(message_ids))).mappings()
    }
    by_message: dict[str, list[Mapping[Any, Any]]] = {mid: [] for mid in message_ids}
    query = (
        sa.select(recipients)
        .where(recipients.c.message_id.in_(message_ids))
        .order_by(recipients.c.message_id, recipients.c.position)
    )
    for r in conn.execute(query).mappings():
        by_message[r["message_id"]].append(r)
    return [(rows[mid], by_message[mid]) for mid in message_ids if mid in rows]
