"""Status changes after acceptance: each is recorded with its time, and raises its event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from msgine.server import events
from msgine.server.accounts import policy_of
from msgine.server.compliance._gate import Decision, evaluate
from msgine.server.crypto import Vault
from msgine.server.messages import _views
from msgine.server.messages._service import SYSTEM_REPLY_KEY_ID
from msgine.server.storage._tables import messages, recipients, status_events

TERMINAL = frozenset({"delivered", "failed", "rejected"})
_TIME_COLUMN = {"sent": "sent_at", "delivered": "delivered_at", "failed": "failed_at"}
_EVENT = {"sent": "message.sent", "delivered": "message.delivered", "failed": "message.failed"}


@dataclass(frozen=True)
class Outgoing:
    """What the worker needs to submit one recipient (decrypted; never logged)."""

    recipient_id: str
    message_id: str
    account_id: str
    key_id: str | None
    mode: str
    type: str
    status: str
    phone_index: str
    to: str | None = field(repr=False)
    content: str | None = field(repr=False)
    sender: str | None


def load_outgoing(conn: sa.Connection, vault: Vault, recipient_id: str) -> Outgoing | None:
    row = (
        conn.execute(
            sa.select(
                recipients,
                messages.c.key_id,
                messages.c.mode,
                messages.c.type,
                messages.c.content,
                messages.c.sender,
            )
            .join(messages, messages.c.id == recipients.c.message_id)
            .where(recipients.c.id == recipient_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return Outgoing(
        recipient_id=row["id"],
        message_id=row["message_id"],
        account_id=row["account_id"],
        key_id=row["key_id"],
        mode=row["mode"],
        type=row["type"],
        status=row["status"],
        phone_index=row["phone_index"],
        to=_views.decrypt_phone(vault, row),
        content=_views.decrypt_content(vault, {"id": row["message_id"], "content": row["content"]}),
        sender=row["sender"],
    )


def recheck(conn: sa.Connection, out: Outgoing, now: datetime) -> Decision:
    """The compliance gate again, just before submitting (opt-outs may have arrived since)."""
    if out.to is None:
        return Decision("rejected", "erased")
    return evaluate(
        conn,
        account_id=out.account_id,
        policy=policy_of(conn, out.account_id),
        numbers=[out.to],
        indexes=[out.phone_index],
        message_type="marketing" if out.type == "marketing" else "transactional",
        now=now,
        send_at=now,
        system_reply=out.key_id == SYSTEM_REPLY_KEY_ID,
    )[0]


def record_status(
    conn: sa.Connection,
    vault: Vault,
    recipient_id: str,
    status: str,
    *,
    now: datetime,
    error_code: str | None = None,
    carrier_message_id: str | None = None,
) -> bool:
    """Move one recipient to ``status``; False (and nothing written) if it is already final."""
    row = (
        conn.execute(sa.select(recipients).where(recipients.c.id == recipient_id))
        .mappings()
        .first()
    )
    if row is None or row["status"] in TERMINAL or row["status"] == status:
        return False
    values: dict[str, Any] = {"status": status, "error_code": error_code, "updated_at": now}
    if carrier_message_id is not None:
        values["carrier_message_id"] = carrier_message_id
    if status in _TIME_COLUMN:
        values[_TIME_COLUMN[status]] = now
    conn.execute(sa.update(recipients).where(recipients.c.id == recipient_id).values(**values))
    conn.execute(
        sa.insert(status_events).values(
            message_id=row["message_id"],
            recipient_id=recipient_id,
            status=status,
            error_code=error_code,
            carrier_message_id=carrier_message_id or row["carrier_message_id"],
            occurred_at=now,
        )
    )
    message = _refresh_message(conn, row["message_id"], now)
    if status in _EVENT:
        _emit_status_event(conn, vault, message, {**row, **values}, status, now)
    return True


def _refresh_message(conn: sa.Connection, message_id: str, now: datetime) -> dict[str, Any]:
    statuses = (
        conn.execute(sa.select(recipients.c.status).where(recipients.c.message_id == message_id))
        .scalars()
        .all()
    )
    conn.execute(
        sa.update(messages)
        .where(messages.c.id == message_id)
        .values(status=_views.aggregate_status(list(statuses)), updated_at=now)
    )
    return dict(
        conn.execute(sa.select(messages).where(messages.c.id == message_id)).mappings().one()
    )


def _emit_status_event(
    conn: sa.Connection,
    vault: Vault,
    message: dict[str, Any],
    recipient: dict[str, Any],
    status: str,
    now: datetime,
) -> None:
    data: dict[str, Any] = {
        "recipientId": recipient["id"],
        "carrierMessageId": recipient.get("carrier_message_id"),
        "segments": message["segments"],
        "messageStatus": message["status"],
    }
    if recipient.get("error_code"):
        data["errorCode"] = recipient["error_code"]
    events.emit(
        conn,
        vault,
        account_id=message["account_id"],
        event_type=_EVENT[status],
        now=now,
        fields={
            "status": status,
            "messageId": message["id"],
            "to": _views.decrypt_phone(vault, recipient),
            "from": message["sender"],
            "sid": message["id"],
        },
        data=data,
        message_id=message["id"],
        recipient_id=recipient["id"],
        phone_index=recipient["phone_index"],
        callback_url=message["callback_url"],
    )
