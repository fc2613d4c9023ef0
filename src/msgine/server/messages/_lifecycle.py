"""Status changes after acceptance: each is recorded with its time, and raises its event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from msgine.server import analytics, compliance, events
from msgine.server.accounts import AccountPolicy, policy_of
from msgine.server.crypto import Vault
from msgine.server.messages import _history, _views
from msgine.server.messages._service import SYSTEM_REPLY_KEY_ID
from msgine.server.storage import Direct, KeyedSelect, messages, recipients, status_events

# compliance is imported as a module and its names looked up when called: compliance uses this
# package's text and number helpers, so the two packages import each other while initialising.

TERMINAL = frozenset({"delivered", "failed", "rejected"})
_TIME_COLUMN = _history.TIME_COLUMN
#: Final statuses, counted once each (analytics): delivered, or failed (a recipient rejected
#: here was accepted first; one rejected at acceptance is final and never reaches this module).
_SETTLED = TERMINAL
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
    region: str | None = None
    #: The carrier last given this recipient, and when a submit to it began (cleared when it
    #: is known not to have been sent): both set with no outcome means one may be in flight.
    carrier: str | None = None
    submitted_at: datetime | None = None
    encoding: str = "GSM-7"
    segments: int = 1


@dataclass(frozen=True)
class StatusChange:
    """A recorded status change, for metrics and logs after its transaction commits (ids and
    statuses only: nothing personal)."""

    recipient_id: str
    message_id: str
    status: str
    mode: str
    at: datetime
    sent_at: datetime | None


_OUTGOING_SELECT = sa.select(
    recipients,
    messages.c.key_id,
    messages.c.mode,
    messages.c.type,
    messages.c.content,
    messages.c.sender,
    messages.c.encoding,
    messages.c.segments,
).join(messages, messages.c.id == recipients.c.message_id)
# A claim's recipients in one statement: on PostgreSQL one round trip for the batch.
_OUTGOING = KeyedSelect(_OUTGOING_SELECT, recipients.c.id)


def load_outgoing(conn: sa.Connection, vault: Vault, recipient_id: str) -> Outgoing | None:
    return load_outgoings(conn, vault, [recipient_id])[0]


def load_outgoings(
    conn: sa.Connection, vault: Vault, recipient_ids: Sequence[str]
) -> list[Outgoing | None]:
    """``load_outgoing`` of each id, in order, in one read."""
    rows = _OUTGOING.all(conn, {}, list(dict.fromkeys(recipient_ids)))
    found = {row["id"]: row for row in rows}
    return [
        None if (row := found.get(rid)) is None else _outgoing(vault, row) for rid in recipient_ids
    ]


def _outgoing(vault: Vault, row: dict[str, Any]) -> Outgoing:
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
        region=row["region"],
        carrier=row["carrier"],
        submitted_at=row["submitted_at"],
        encoding=row["encoding"],
        segments=row["segments"],
    )


def recheck(
    conn: sa.Connection, outs: Sequence[Outgoing], now: datetime
) -> list[compliance.Decision]:
    """The compliance gate again, just before submitting (opt-outs may have arrived since).

    One decision per recipient, in order. Recipients that share an account and kind of message
    are evaluated together, so a batch costs one policy read and one gate per account.
    """
    decisions: dict[int, compliance.Decision] = {}
    groups: dict[tuple[str, str, compliance.MessageType, bool], list[tuple[int, str, str]]] = {}
    for position, out in enumerate(outs):
        if out.to is None:
            decisions[position] = compliance.Decision("rejected", "erased")
            continue
        kind: compliance.MessageType = "marketing" if out.type == "marketing" else "transactional"
        group = (out.account_id, out.mode, kind, out.key_id == SYSTEM_REPLY_KEY_ID)
        groups.setdefault(group, []).append((position, out.to, out.phone_index))
    policies: dict[str, AccountPolicy] = {}
    for (account_id, mode, kind, system_reply), members in groups.items():
        if account_id not in policies:
            policies[account_id] = policy_of(conn, account_id)
        found = compliance.evaluate(
            conn,
            account_id=account_id,
            mode=mode,
            policy=policies[account_id],
            numbers=[to for _, to, _ in members],
            indexes=[index for _, _, index in members],
            message_type=kind,
            now=now,
            send_at=now,
            system_reply=system_reply,
        )
        decisions.update(zip((position for position, _, _ in members), found, strict=True))
    return [decisions[position] for position in range(len(outs))]


# The number of recipients of a recipient's message, which picks how the message's status is
# recomputed. Recipients are fixed when a message is accepted, so the count is the same in any
# snapshot. Qualified by hand: SQLAlchemy renders RETURNING columns unqualified on SQLite, where
# the bare name would mean the alias's own column and count every recipient.
_OTHER = recipients.alias("other")
_SIBLINGS = sa.select(sa.func.count()).where(
    _OTHER.c.message_id == sa.literal_column("recipients.message_id")
)
# Direct statements: the worker runs them for every status change. They read only the columns
# the status event needs (converting a column costs as much as reading it).
# The status condition makes check-and-set atomic: of two workers racing (a receipt and the
# submit's own "sent"), the one that finds the row already final changes nothing. Executed with
# the changed columns as parameters, it sets exactly those and returns the changed row.
_SET_STATUS = Direct(
    sa.update(recipients)
    .where(
        recipients.c.id == sa.bindparam("rid"),
        *(recipients.c.status != final for final in sorted(TERMINAL)),
        recipients.c.status != sa.bindparam("new_status"),
    )
    .returning(
        recipients.c.id,
        recipients.c.message_id,
        recipients.c.phone,
        recipients.c.phone_index,
        recipients.c.error_code,
        recipients.c.carrier_message_id,
        recipients.c.carrier,
        recipients.c.sent_at,
        _SIBLINGS.scalar_subquery().label("recipient_count"),
    )
)
# What a status change's event and counters need of its message.
_MESSAGE_FOR_EVENTS = (
    messages.c.id,
    messages.c.account_id,
    messages.c.mode,
    messages.c.sender,
    messages.c.segments,
    messages.c.callback_url,
    messages.c.currency,
    messages.c.scheduled_for,
    messages.c.created_at,
)
# Serialises the recomputation of one message's status across concurrent workers; the locked
# row cannot change under us, so it is read in the same statement.
_LOCK_MESSAGE = Direct(
    sa.select(*_MESSAGE_FOR_EVENTS).where(messages.c.id == sa.bindparam("mid")).with_for_update()
)
_INSERT_STATUS_EVENT = Direct(status_events.insert())
_STATUSES = Direct(
    sa.select(recipients.c.status).where(recipients.c.message_id == sa.bindparam("mid"))
)
_UPDATE_MESSAGE = Direct(sa.update(messages).where(messages.c.id == sa.bindparam("mid")))
# A one-recipient message's status is its recipient's, and the recipient's row, changed just
# before in this transaction, is locked until it commits: no other status change of this
# message can interleave, so no message lock or status read is needed.
_SET_SOLE_STATUS = Direct(
    sa.update(messages)
    .where(messages.c.id == sa.bindparam("mid"))
    .returning(*_MESSAGE_FOR_EVENTS, messages.c.status, messages.c.updated_at)
)


def record_status(
    conn: sa.Connection,
    vault: Vault,
    recipient_id: str,
    status: str,
    *,
    now: datetime,
    error_code: str | None = None,
    carrier_message_id: str | None = None,
    carrier: str | None = None,
    detail: str | None = None,
) -> StatusChange | None:
    """Move one recipient to ``status``; None (and nothing written) if it is already final or
    in that status. ``carrier`` records which carrier it is with; ``detail`` (the carrier's
    state word, why) goes to the status history only."""
    values: dict[str, Any] = {"status": status, "error_code": error_code, "updated_at": now}
    if carrier_message_id is not None:
        values["carrier_message_id"] = carrier_message_id
    if carrier is not None:
        values["carrier"] = carrier
    if status in _TIME_COLUMN:
        values[_TIME_COLUMN[status]] = now
    row = _SET_STATUS.first(conn, {"rid": recipient_id, "new_status": status, **values})
    if row is None:
        return None
    # The status history keeps only what the recipient row cannot tell (see _history). It is
    # append-only and not read back in this transaction: its rows join the batch's one
    # multi-row insert (see Direct.defer).
    if _history.change_kept(
        status, error_code=error_code, carrier=carrier, detail=detail, recipient=row
    ):
        _INSERT_STATUS_EVENT.defer(
            conn,
            [
                {
                    "message_id": row["message_id"],
                    "recipient_id": recipient_id,
                    "status": status,
                    "error_code": error_code,
                    "carrier_message_id": row["carrier_message_id"],
                    "occurred_at": now,
                    "carrier": carrier,
                    "detail": detail,
                }
            ],
        )
    message = _refresh_message(
        conn, row["message_id"], now, sole=(status if row["recipient_count"] == 1 else None)
    )
    if status in _EVENT:
        _emit_status_event(conn, vault, message, row, status, now)
    if status in _SETTLED:
        analytics.count(
            conn,
            account_id=message["account_id"],
            mode=message["mode"],
            due=message["scheduled_for"] or message["created_at"],
            currency=message["currency"],
            delivered=int(status == "delivered"),
            failed=int(status != "delivered"),
        )
    return StatusChange(
        recipient_id=recipient_id,
        message_id=row["message_id"],
        status=status,
        mode=message["mode"],
        at=now,
        sent_at=row["sent_at"],
    )


def note_history(
    conn: sa.Connection,
    out: Outgoing,
    status: str,
    *,
    now: datetime,
    carrier: str | None,
    detail: str,
    error_code: str | None = None,
) -> None:
    """A status-history line with no status change: a failover, a resubmit and their reason."""
    _INSERT_STATUS_EVENT.defer(
        conn,
        [
            {
                "message_id": out.message_id,
                "recipient_id": out.recipient_id,
                "status": status,
                "error_code": error_code,
                "carrier_message_id": None,
                "occurred_at": now,
                "carrier": carrier,
                "detail": detail[:200],
            }
        ],
    )


def _refresh_message(
    conn: sa.Connection, message_id: str, now: datetime, *, sole: str | None
) -> dict[str, Any]:
    """Recompute the message's status (``sole``: its one recipient's new status); returns what
    its events need."""
    if sole is not None:
        message = _SET_SOLE_STATUS.first(
            conn, {"mid": message_id, "status": sole, "updated_at": now}
        )
    else:
        message = _LOCK_MESSAGE.first(conn, {"mid": message_id})
        if message is not None:
            status = _views.aggregate_status(_STATUSES.scalars(conn, {"mid": message_id}))
            _UPDATE_MESSAGE.execute(conn, {"mid": message_id, "status": status, "updated_at": now})
            message.update(status=status, updated_at=now)
    if message is None:  # recipients reference their message, and messages are never deleted
        raise LookupError(f"message {message_id} not found")
    return message


def _emit_status_event(
    conn: sa.Connection,
    vault: Vault,
    message: dict[str, Any],
    recipient: dict[str, Any],
    status: str,
    now: datetime,
) -> None:
    event_type = _EVENT[status]
    receivers = events.audience(
        conn,
        account_id=message["account_id"],
        mode=message["mode"],
        event_type=event_type,
        now=now,
        callback_url=message["callback_url"],
    )
    if not receivers:  # nobody receives it: not stored, and its body (a number) not decrypted
        return
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
        mode=message["mode"],
        event_type=event_type,
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
        receivers=receivers,
    )
