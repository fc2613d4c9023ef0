"""Finding messages for people (the console): by id, status, date range and recipient, a page
at a time, and one message's detail with each recipient's status timeline.

A recipient is found through its blind index (the keyed hash stored beside the encrypted
number), so a search never decrypts a stored number to compare it. Pages are keyset pages
(newest first, by creation time then id) behind an opaque cursor: page 1,000 costs what page 1
does, and a message stored while someone pages never shifts the rows they have yet to see.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa

from msgine.server.crypto import Vault
from msgine.server.errors import InvalidRequest, NotFound
from msgine.server.messages import _views
from msgine.server.messages._history import timelines
from msgine.server.messages._numbers import normalize_number
from msgine.server.storage import messages, recipients

MAX_PAGE: Final = 100
_ID_LENGTH: Final = 40


@dataclass(frozen=True)
class MessageFilter:
    """What to look for; every field set narrows the search. ``recipient`` is a number as a
    person typed it (normalised here to E.164, then looked up by its blind index)."""

    account_id: str
    mode: str | None = None
    message_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    recipient: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RecipientLine:
    """One recipient of a message. ``number`` is the decrypted E.164 (None once erased): show
    it masked; it is kept out of reprs."""

    id: str
    position: int
    status: str
    error_code: str | None
    carrier: str | None
    updated_at: datetime
    number: str | None = field(repr=False)


@dataclass(frozen=True)
class MessageSummary:
    id: str
    mode: str
    type: str
    status: str
    sender: str | None
    segments: int
    cost: int
    currency: str
    created_at: datetime
    updated_at: datetime
    recipients: tuple[RecipientLine, ...]


@dataclass(frozen=True)
class MessagePage:
    items: list[MessageSummary]
    #: Pass back as ``cursor`` for the next (older) page; None on the last page.
    next_cursor: str | None


@dataclass(frozen=True)
class StatusStep:
    """One recorded status change of a recipient (``detail``: a failover reason, a carrier's
    state word; never personal data)."""

    status: str
    at: datetime
    error_code: str | None
    carrier: str | None
    carrier_message_id: str | None
    detail: str | None


@dataclass(frozen=True)
class RecipientTimeline:
    recipient: RecipientLine
    steps: tuple[StatusStep, ...]


@dataclass(frozen=True)
class MessageDetail:
    summary: MessageSummary
    content: str | None = field(repr=False)
    encoding: str
    callback_url: str | None
    scheduled_for: datetime | None
    timelines: tuple[RecipientTimeline, ...]


def search_messages(
    conn: sa.Connection,
    vault: Vault,
    wanted: MessageFilter,
    *,
    limit: int = 25,
    cursor: str | None = None,
) -> MessagePage:
    """One page of the messages ``wanted`` describes, newest first."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit is 1 to {MAX_PAGE}.", details={"field": "limit"})
    query = sa.select(messages).where(*_conditions(vault, wanted))
    if cursor is not None:
        at, last_id = decode_cursor(cursor)
        query = query.where(
            sa.or_(
                messages.c.created_at < at,
                sa.and_(messages.c.created_at == at, messages.c.id < last_id),
            )
        )
    rows = list(
        conn.execute(
            query.order_by(messages.c.created_at.desc(), messages.c.id.desc()).limit(limit + 1)
        ).mappings()
    )
    more, rows = len(rows) > limit, rows[:limit]
    lines = _recipient_lines(conn, vault, [r["id"] for r in rows])
    items = [_summary(r, lines.get(r["id"], [])) for r in rows]
    last = rows[-1] if more else None
    return MessagePage(items, encode_cursor(last["created_at"], last["id"]) if last else None)


def _conditions(vault: Vault, wanted: MessageFilter) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = [messages.c.account_id == wanted.account_id]
    if wanted.mode is not None:
        where.append(messages.c.mode == wanted.mode)
    if wanted.message_id:
        where.append(messages.c.id == wanted.message_id.strip()[:_ID_LENGTH])
    if wanted.status:
        if wanted.status not in _views.MESSAGE_STATUSES:
            raise InvalidRequest(
                "Unknown status.",
                details={"field": "status", "allowed": list(_views.MESSAGE_STATUSES)},
            )
        where.append(messages.c.status == wanted.status)
    if wanted.since is not None:
        where.append(messages.c.created_at >= wanted.since)
    if wanted.until is not None:
        where.append(messages.c.created_at < wanted.until)
    if wanted.recipient:
        number = normalize_number(wanted.recipient, field="recipient")
        index = vault.blind_index(wanted.account_id, number)
        where.append(
            messages.c.id.in_(
                sa.select(recipients.c.message_id).where(
                    recipients.c.account_id == wanted.account_id,
                    recipients.c.phone_index == index,
                )
            )
        )
    return where


def encode_cursor(at: datetime, message_id: str) -> str:
    raw = f"{at.isoformat()}|{message_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; anything else (edited, truncated) is a clear 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, message_id = raw.split("|")
        moment = datetime.fromisoformat(at)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("Invalid cursor.", details={"field": "cursor"}) from None
    if moment.tzinfo is None or not 0 < len(message_id) <= _ID_LENGTH:
        raise InvalidRequest("Invalid cursor.", details={"field": "cursor"})
    return moment, message_id


def message_detail(
    conn: sa.Connection, vault: Vault, account_id: str, message_id: str, mode: str | None = None
) -> MessageDetail:
    """One message of the account (and ``mode``) with every recipient's timeline, oldest step
    first; another account's or mode's message is not found."""
    found = _views.load(conn, [message_id])
    if not found or found[0][0]["account_id"] != account_id:
        raise NotFound("Message not found.")
    message, rcpts = found[0]
    if mode is not None and message["mode"] != mode:
        raise NotFound("Message not found.")
    lines = [_line(vault, r) for r in rcpts]
    steps = {
        rid: [_step(s) for s in found] for rid, found in timelines(conn, message, rcpts).items()
    }
    return MessageDetail(
        summary=_summary(message, lines),
        content=_views.decrypt_content(vault, message),
        encoding=message["encoding"],
        callback_url=message["callback_url"],
        scheduled_for=message["scheduled_for"],
        timelines=tuple(RecipientTimeline(line, tuple(steps[line.id])) for line in lines),
    )


def _recipient_lines(
    conn: sa.Connection, vault: Vault, message_ids: Sequence[str]
) -> dict[str, list[RecipientLine]]:
    found: dict[str, list[RecipientLine]] = {}
    if not message_ids:
        return found
    query = (
        sa.select(recipients)
        .where(recipients.c.message_id.in_(list(message_ids)))
        .order_by(recipients.c.message_id, recipients.c.position)
    )
    for row in conn.execute(query).mappings():
        found.setdefault(row["message_id"], []).append(_line(vault, row))
    return found


def _line(vault: Vault, row: Mapping[Any, Any]) -> RecipientLine:
    return RecipientLine(
        id=row["id"],
        position=row["position"],
        status=row["status"],
        error_code=row["error_code"],
        carrier=row["carrier"],
        updated_at=row["updated_at"],
        number=_views.decrypt_phone(vault, row),
    )


def _summary(row: Mapping[Any, Any], lines: Sequence[RecipientLine]) -> MessageSummary:
    return MessageSummary(
        id=row["id"],
        mode=row["mode"],
        type=row["type"],
        status=row["status"],
        sender=row["sender"],
        segments=row["segments"],
        cost=row["cost"],
        currency=row["currency"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        recipients=tuple(lines),
    )


def _step(row: Mapping[Any, Any]) -> StatusStep:
    return StatusStep(
        status=row["status"],
        at=row["occurred_at"],
        error_code=row["error_code"],
        carrier=row["carrier"],
        carrier_message_id=row["carrier_message_id"],
        detail=row["detail"],
    )
