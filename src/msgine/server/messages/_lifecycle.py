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


_OUTGOING = (
    sa.select(
        recipients,
        messages.c.key_id,
        messages.c.mode,
        messages.c.type,
        messages.c.content,
        messages.c.sender,
    )
    .join(messages, messages.c.id == recipients.c.message_id)
    .where(recipients.c.id == sa.bindparam("rid"))
)


def load_outgoing(conn: sa.Connection, vault: Vault, recipient_id: str) -> Outgoing | None:
    row = conn.execute(_OUTGOING, {"rid": recipient_id}).mappings().first()
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


# Statements built once: the worker runs them for every status change.
_RECIPIENT = sa.select(recipients).where(recipients.c.id == sa.bindparam("rid"))
# Executed with the changed columns as parameters; SQLAlchemy sets exactly those. The status
# condition makes check-and-set atomic: of two workers racing (a receipt and the submit's own
# "sent"), the one that finds the row already final changes nothing.
_UPDATE_RECIPIENT = sa.update(recipients).where(
    recipients.c.id == sa.bindparam("rid"),
    recipients.c.status.not_in(sorted(TERMINAL)),
    recipients.c.status != sa.bindparam("new_status"),
)
# Serialises the recomputation of one message's status across concurrent workers.
_LOCK_MESSAGE = (
    sa.select(messages.c.id).where(messages.c.id == sa.bindparam("mid")).with_for_update()
)
_INSERT_STATUS_EVENT = status_events.insert()
_STATUSES = sa.select(recipients.c.status).where(recipients.c.message_id == sa.bindparam("mid"))
_UPDATE_MESSAGE = sa.update(messages).where(messages.c.id == sa.bindparam("mid"))
_MESSAGE = sa.select(messages).where(messages.c.id == sa.bindparam("mid"))


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
    row = conn.execute(_RECIPIENT, {"rid": recipient_id}).mappings().first()
    if row is None or row["status"] in TERMINAL or row["status"] == status:
        return False
    values: dict[str, Any] = {"status": status, "error_code": error_code, "updated_at": now}
    if carrier_message_id is not None:
        values["carrier_message_id"] = carrier_message_id
    if status in _TIME_COLUMN:
        values[_TIME_COLUMN[status]] = now
    changed = conn.execute(_UPDATE_RECIPIENT, {"rid": recipient_id, "new_status": status, **values})
    if changed.rowcount != 1:
        return False
    conn.execute(
        _INSERT_STATUS_EVENT,
        {
            "message_id": row["message_id"],
            "recipient_id": recipient_id,
            "status": status,
            "error_code": error_code,
            "carrier_message_id": carrier_message_id or row["carrier_message_id"],
            "occurred_at": now,
        },
    )
    message = _refresh_message(conn, row["message_id"], now)
    if status in _EVENT:
        _emit_status_event(conn, vault, message, {**row, **values}, status, now)
    return True


def _refresh_message(conn: sa.Connection, message_id: str, now: datetime) -> dict[str, Any]:
    conn.execute(_LOCK_MESSAGE, {"mid": message_id})
    statuses = conn.execute(_STATUSES, {"mid": message_id}).scalars().all()
    status = _views.aggregate_status(list(statuses))
    conn.execute(_UPDATE_MESSAGE, {"mid": message_id, "status": status, "updated_at": now})
    message = dict(conn.execute(_MESSAGE, {"mid": message_id}).mappings().one())
    return message


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
