"""Accepting a send: validation, idempotency, compliance, and one durable transaction.

The message, its recipients, their first status and the outbox jobs that will submit them are
written together; a 201 is only returned after that commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from msgine.server import analytics, compliance, webhooks
from msgine.server._ids import new_id
from msgine.server.accounts import policy_of
from msgine.server.crypto import Vault
from msgine.server.errors import IdempotencyConflict, InvalidRequest, NotFound
from msgine.server.keys import Mode, Principal
from msgine.server.messages import _views
from msgine.server.messages._history import initial_kept
from msgine.server.messages._numbers import parse_recipients, region_of
from msgine.server.messages._sender import validate_sender_id
from msgine.server.messages._text import segment_info, validate_content
from msgine.server.storage import (
    BatchRead,
    Direct,
    idempotency_keys,
    jobs,
    messages,
    recipients,
    status_events,
)

# compliance and webhooks are imported as modules and their names looked up when called: both
# use this package's text and number helpers, so the packages import each other while initialising.

MessageType = Literal["transactional", "marketing"]
IDEMPOTENCY_TTL = timedelta(hours=24)
MAX_SCHEDULE_AHEAD = timedelta(days=35)
# A scheduledFor this close to now counts as "now": clocks differ a little between machines.
SCHEDULE_SLACK = timedelta(seconds=60)
SUBMIT_JOB = "submit"
#: ``messages.key_id`` of replies the gateway sends on its own (no API key sent them).
SYSTEM_REPLY_KEY_ID = "system:reply"


@dataclass(frozen=True)
class SendCommand:
    """A validated send request. Holds personal data: keep it out of logs (no repr)."""

    to: list[str] = field(repr=False)
    content: str = field(repr=False)
    sender: str | None
    callback_url: str | None
    scheduled_for: datetime | None
    type: MessageType
    idempotency_key: str | None
    request_hash: str


@dataclass(frozen=True)
class SendResult:
    response: dict[str, Any] = field(repr=False)
    replayed: bool
    message_id: str


def build_command(
    *,
    to: str | list[str],
    message: str,
    sender: str | None,
    callback_url: str | None,
    scheduled_for: datetime | None,
    message_type: MessageType,
    idempotency_key: str | None,
    now: datetime,
) -> SendCommand:
    numbers = parse_recipients(to)
    content = validate_content(message)
    clean_sender = validate_sender_id(sender)
    url = webhooks.check_url_syntax(callback_url) if callback_url else None
    if scheduled_for is not None:
        if scheduled_for.tzinfo is None:
            raise InvalidRequest(
                "scheduledFor needs a time zone (e.g. 2026-01-01T09:00:00Z).",
                details={"field": "scheduledFor"},
            )
        if scheduled_for < now - SCHEDULE_SLACK:
            raise InvalidRequest("scheduledFor is in the past.", details={"field": "scheduledFor"})
        if scheduled_for > now + MAX_SCHEDULE_AHEAD:
            raise InvalidRequest(
                "scheduledFor is more than 35 days ahead.", details={"field": "scheduledFor"}
            )
        if scheduled_for <= now:
            scheduled_for = None
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
        raise InvalidRequest(
            "Idempotency keys are 1 to 255 characters.", details={"field": "idempotencyKey"}
        )
    canonical = json.dumps(
        [
            numbers,
            content,
            clean_sender,
            url,
            scheduled_for and scheduled_for.isoformat(),
            message_type,
        ],
        ensure_ascii=False,
    )
    return SendCommand(
        to=numbers,
        content=content,
        sender=clean_sender,
        callback_url=url,
        scheduled_for=scheduled_for,
        type=message_type,
        idempotency_key=idempotency_key,
        request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
    )


# Built once: the send path runs them for every message.
_INSERT_MESSAGES = Direct(messages.insert())
_INSERT_RECIPIENTS = Direct(recipients.insert())
_INSERT_STATUS_EVENTS = Direct(status_events.insert())
_INSERT_JOBS = Direct(jobs.insert())
_INSERT_IDEMPOTENCY_KEY = Direct(idempotency_keys.insert())
# Scoped by account and mode: a test key never replays (nor collides with) a live request.
_IDEMPOTENCY_WHERE = (
    idempotency_keys.c.account_id == sa.bindparam("account_id"),
    idempotency_keys.c.mode == sa.bindparam("mode"),
    idempotency_keys.c.key == sa.bindparam("key"),
)
_IDEMPOTENCY_KEY = Direct(sa.select(idempotency_keys).where(*_IDEMPOTENCY_WHERE))
_DELETE_IDEMPOTENCY_KEY = Direct(sa.delete(idempotency_keys).where(*_IDEMPOTENCY_WHERE))


def _replay(
    conn: sa.Connection, vault: Vault, principal: Principal, cmd: SendCommand, now: datetime
) -> SendResult | None:
    if cmd.idempotency_key is None:
        return None
    key_hash = vault.idempotency_hash(principal.account_id, cmd.idempotency_key)
    where = {"account_id": principal.account_id, "mode": principal.mode, "key": key_hash}
    row = _IDEMPOTENCY_KEY.first(conn, where)
    if row is None:
        return None
    if row["expires_at"] <= now:
        _DELETE_IDEMPOTENCY_KEY.execute(conn, where)
        return None
    if row["request_hash"] != cmd.request_hash:
        raise IdempotencyConflict("This idempotency key was used with a different request body.")
    body = vault.decrypt(
        row["response"], table="idempotency_keys", column="response", row_id=_idem_row_id(row)
    )
    return SendResult(json.loads(body), replayed=True, message_id=row["message_id"])


def _idem_row_id(row: Mapping[Any, Any]) -> str:
    """The stored response's associated data: the account and the key's keyed hash (live
    rows keep the name they always had; a test row's names its mode, so neither decrypts as
    the other)."""
    if row["mode"] == "live":
        return f"{row['account_id']}/{row['key']}"
    return f"{row['account_id']}/{row['mode']}/{row['key']}"


def send_reads(
    vault: Vault, principal: Principal, cmd: SendCommand
) -> tuple[list[str], list[BatchRead]]:
    """The recipients' blind indexes (for ``accept``'s ``indexes``) and the reads ``accept``
    makes with them, for its write batch to make together (``BatchRead``; a send never
    writes the suppression list or consents)."""
    account_id, mode = principal.account_id, principal.mode
    indexes = [vault.blind_index(account_id, n) for n in cmd.to]
    reads = [compliance.suppression_read(account_id, mode, indexes)]
    if cmd.type == "marketing":  # read whether or not the account's policy asks for consent
        reads.append(compliance.consent_read(account_id, mode, indexes, "marketing"))
    return indexes, reads


def accept(
    conn: sa.Connection,
    vault: Vault,
    principal: Principal,
    cmd: SendCommand,
    *,
    now: datetime,
    price_per_segment: int,
    currency: str,
    prechecked: Mapping[str, str] | None = None,
    system_reply: bool = False,
    prices: Sequence[int] | None = None,
    notice: Mapping[str, Any] | None = None,
    indexes: Sequence[str] | None = None,
) -> SendResult:
    """Store the message (or return the earlier response for a repeated idempotency key).

    ``prechecked`` maps a recipient number to an error code decided before the transaction
    (rate limits, geo permissions); those recipients are rejected, the others go ahead.
    ``system_reply`` marks an opt-out confirmation or help answer (see ``accept_reply``).
    ``prices`` is each recipient's price per segment from its route (default: the one
    ``price_per_segment``); ``notice`` adds fields to the response (a live message the
    simulator serves says so). ``indexes``: the recipients' blind indexes, when the caller
    already has them (``send_reads``).
    """
    replay = _replay(conn, vault, principal, cmd, now)
    if replay is not None:
        return replay
    account_id = principal.account_id
    policy = policy_of(conn, account_id)
    content = compliance.identify(cmd.content, policy, cmd.type)
    info = segment_info(content)
    if indexes is None:
        indexes = [vault.blind_index(account_id, n) for n in cmd.to]
    send_at = cmd.scheduled_for or now
    decisions = compliance.evaluate(
        conn,
        account_id=account_id,
        mode=principal.mode,
        policy=policy,
        numbers=cmd.to,
        indexes=indexes,
        system_reply=system_reply,
        message_type=cmd.type,
        now=now,
        send_at=send_at,
    )
    rejected_early = prechecked or {}
    decisions = [
        compliance.Decision("rejected", rejected_early[n]) if n in rejected_early else d
        for n, d in zip(cmd.to, decisions, strict=True)
    ]
    each_price = list(prices) if prices is not None else [price_per_segment] * len(cmd.to)
    billable = sum(p for p, d in zip(each_price, decisions, strict=True) if d.status != "rejected")
    message_id = new_id("msg")
    cost = info.segments * billable
    message_row = {
        "id": message_id,
        "account_id": account_id,
        "key_id": principal.key_id,
        "mode": principal.mode,
        "type": cmd.type,
        "sender": cmd.sender,
        "content": vault.encrypt_str(
            content, table="messages", column="content", row_id=message_id
        ),
        "encoding": info.encoding,
        "segments": info.segments,
        "cost": cost,
        "currency": currency,
        "callback_url": cmd.callback_url,
        "status": _views.aggregate_status([d.status for d in decisions]),
        "scheduled_for": cmd.scheduled_for,
        "created_at": now,
        "updated_at": now,
    }
    recipient_rows, event_rows, job_rows = [], [], []
    for position, (number, index, decision) in enumerate(
        zip(cmd.to, indexes, decisions, strict=True)
    ):
        rid = new_id("rcp")
        recipient_rows.append(
            {
                "id": rid,
                "message_id": message_id,
                "account_id": account_id,
                "position": position,
                "phone": vault.encrypt_str(number, table="recipients", column="phone", row_id=rid),
                "phone_index": index,
                "region": region_of(number),
                "status": decision.status,
                "error_code": decision.error_code,
                "carrier_message_id": None,
                "updated_at": now,
                "failed_at": now if decision.status == "rejected" else None,
            }
        )
        if initial_kept(decision.status, decision.error_code):
            event_rows.append(
                {
                    "message_id": message_id,
                    "recipient_id": rid,
                    "status": decision.status,
                    "error_code": decision.error_code,
                    "occurred_at": now,
                }
            )
        if decision.status != "rejected":
            job_rows.append(
                {
                    "kind": SUBMIT_JOB,
                    "ref": rid,
                    "due_at": decision.due_at or now,
                    "attempts": 0,
                    "created_at": now,
                }
            )
    # Nothing below reads these rows back, so they join the batch's bulk inserts.
    _INSERT_MESSAGES.defer(conn, [message_row])
    analytics.count(
        conn,
        account_id=account_id,
        mode=principal.mode,
        due=send_at,
        currency=currency,
        sent=len(job_rows),
        cost=cost,
    )
    _INSERT_RECIPIENTS.defer(conn, recipient_rows)
    if event_rows:  # only what the recipient rows cannot tell (see _history)
        _INSERT_STATUS_EVENTS.defer(conn, event_rows)
    _INSERT_JOBS.defer(conn, job_rows)
    response = _views.present(message_row, recipient_rows, phones=cmd.to, content=content)
    if notice:
        response.update(notice)
    if cmd.idempotency_key is not None:
        # Stored as a keyed hash: the client's key is its own text (docs/data-protection.md).
        key_hash = vault.idempotency_hash(account_id, cmd.idempotency_key)
        key = {"account_id": account_id, "mode": principal.mode, "key": key_hash}
        row_id = _idem_row_id(key)
        _INSERT_IDEMPOTENCY_KEY.execute(
            conn,
            {
                **key,
                "request_hash": cmd.request_hash,
                "message_id": message_id,
                "response": vault.encrypt(
                    json.dumps(response, ensure_ascii=False).encode(),
                    table="idempotency_keys",
                    column="response",
                    row_id=row_id,
                ),
                "created_at": now,
                "expires_at": now + IDEMPOTENCY_TTL,
            },
        )
    return SendResult(response, replayed=False, message_id=message_id)


def accept_reply(
    conn: sa.Connection,
    vault: Vault,
    *,
    account_id: str,
    mode: Mode,
    to: str,
    content: str,
    sender: str | None,
    now: datetime,
    price_per_segment: int,
    currency: str,
) -> str:
    """A system reply from the account to one number (opt-out confirmation, help answer).

    It is an ordinary transactional message sent with the system key id, which the compliance
    gate exempts from the suppression list (at accept and again before submit), so the one
    confirmation of an opt-out is not stopped by that very opt-out. Returns the message id.
    """
    cmd = build_command(
        to=to,
        message=content,
        sender=sender,
        callback_url=None,
        scheduled_for=None,
        message_type="transactional",
        idempotency_key=None,
        now=now,
    )
    principal = Principal(
        key_id=SYSTEM_REPLY_KEY_ID,
        account_id=account_id,
        mode=mode,
        scopes=frozenset(),
        rate_limit=None,
    )
    result = accept(
        conn,
        vault,
        principal,
        cmd,
        now=now,
        price_per_segment=price_per_segment,
        currency=currency,
        system_reply=True,
    )
    return result.message_id


def get_message(
    conn: sa.Connection, vault: Vault, account_id: str, message_id: str, mode: str | None = None
) -> dict[str, Any]:
    """One message of this account (and ``mode``); another account's or mode's id is simply
    not found."""
    found = _views.load(conn, [message_id])
    if not found or found[0][0]["account_id"] != account_id:
        raise NotFound("Message not found.")
    if mode is not None and found[0][0]["mode"] != mode:
        raise NotFound("Message not found.")
    message, rcpts = found[0]
    return _views.render(message, rcpts, vault)


def list_messages(
    conn: sa.Connection,
    vault: Vault,
    account_id: str,
    *,
    page: int,
    limit: int,
    status: str | None = None,
    mode: str | None = None,
) -> dict[str, Any]:
    where: list[sa.ColumnElement[bool]] = [messages.c.account_id == account_id]
    if mode is not None:
        where.append(messages.c.mode == mode)
    if status:
        where.append(messages.c.status == status)
    total = conn.execute(
        sa.select(sa.func.count()).select_from(messages).where(*where)
    ).scalar_one()
    ids: Sequence[str] = (
        conn.execute(
            sa.select(messages.c.id)
            .where(*where)
            .order_by(messages.c.created_at.desc(), messages.c.id.desc())
            .limit(limit)
            .offset((page - 1) * limit)
        )
        .scalars()
        .all()
    )
    items = [_views.render(m, r, vault) for m, r in _views.load(conn, list(ids))]
    return {
        "messages": items,
        "total": total,
        "page": page,
        "limit": limit,
        "pages": (total + limit - 1) // limit if total else 0,
    }
