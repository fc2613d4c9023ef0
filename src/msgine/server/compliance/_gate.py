"""The compliance gate: which recipients of a send may be messaged, now or later.

Checked when a message is accepted and again just before each recipient is submitted, so an
opt-out or a withdrawn consent that arrives while a message waits still stops it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal

import sqlalchemy as sa

from msgine.server.accounts import AccountPolicy
from msgine.server.compliance._identification import DEFAULT_OPT_OUT_TEMPLATE, add_identification
from msgine.server.compliance._quiet_hours import QuietWindow, next_allowed
from msgine.server.errors import ConsentRequired, QuietHours, RecipientOptedOut
from msgine.server.messages import timezones_of
from msgine.server.storage import BatchRead, KeyedSelect, batch_memo, consents, suppressions

MessageType = Literal["transactional", "marketing"]


@dataclass(frozen=True)
class Decision:
    status: Literal["queued", "scheduled", "rejected"]
    error_code: str | None = None
    due_at: datetime | None = None


def window_of(policy: AccountPolicy) -> QuietWindow:
    return QuietWindow(
        time.fromisoformat(policy.quiet_hours_start), time.fromisoformat(policy.quiet_hours_end)
    )


# Built once: the send path and the worker run them for every message, for one recipient or
# many (see KeyedSelect); a write batch's lookups read ahead use them too.
_SUPPRESSED = KeyedSelect(
    sa.select(suppressions.c.phone_index).where(
        suppressions.c.account_id == sa.bindparam("account_id"),
        suppressions.c.mode == sa.bindparam("mode"),
    ),
    suppressions.c.phone_index,
)
_CONSENTED = KeyedSelect(
    sa.select(consents.c.phone_index).where(
        consents.c.account_id == sa.bindparam("account_id"),
        consents.c.mode == sa.bindparam("mode"),
        consents.c.purpose == sa.bindparam("purpose"),
        consents.c.withdrawn_at.is_(None),
    ),
    consents.c.phone_index,
)


def suppressed_indexes(
    conn: sa.Connection, account_id: str, mode: str, indexes: Sequence[str]
) -> set[str]:
    """The ``indexes`` on the account's suppression list of ``mode`` (test and live each
    have their own: a simulated STOP never blocks a live send, nor lifts a real opt-out).
    Answered from the batch's memo when the writer read them ahead (``suppression_read``)."""
    params = {"account_id": account_id, "mode": mode}
    found = _read_ahead(conn, _SUPPRESSED, params, indexes)
    return found if found is not None else _present(conn, _SUPPRESSED, params, indexes)


def suppression_read(account_id: str, mode: str, indexes: Sequence[str]) -> BatchRead:
    """Declares a write's ``suppressed_indexes`` lookup, for the writer to make with the rest
    of its batch's (a write that declares it must not change the suppression list)."""
    params = (("account_id", account_id), ("mode", mode))
    return BatchRead(_read_suppressions, (params, tuple(indexes)))


def consented_indexes(
    conn: sa.Connection, account_id: str, mode: str, indexes: Sequence[str], purpose: str
) -> set[str]:
    """The ``indexes`` with an open consent for ``purpose``; from the batch's memo when the
    writer read them ahead (``consent_read``)."""
    params = {"account_id": account_id, "mode": mode, "purpose": purpose}
    found = _read_ahead(conn, _CONSENTED, params, indexes)
    return found if found is not None else _present(conn, _CONSENTED, params, indexes)


def consent_read(account_id: str, mode: str, indexes: Sequence[str], purpose: str) -> BatchRead:
    """Declares a write's ``consented_indexes`` lookup (a write that declares it must not
    change consents)."""
    params = (("account_id", account_id), ("mode", mode), ("purpose", purpose))
    return BatchRead(_read_consents, (params, tuple(indexes)))


#: A lookup's parameters besides the indexes, as (name, value) pairs.
_Params = tuple[tuple[str, str], ...]


def _read_ahead(
    conn: sa.Connection, statement: KeyedSelect, params: dict[str, str], indexes: Sequence[str]
) -> set[str] | None:
    """The ``indexes`` the batch read ahead found, or None when it did not read them all."""
    memo = batch_memo(conn)
    if memo is None:
        return None
    known: tuple[set[str], set[str]] | None = memo.get((statement, *sorted(params.items())))
    if known is None or not known[0].issuperset(indexes):
        return None
    return known[1].intersection(indexes)


def _read_suppressions(conn: sa.Connection, keys: list[tuple[_Params, tuple[str, ...]]]) -> None:
    _read_together(conn, _SUPPRESSED, keys)


def _read_consents(conn: sa.Connection, keys: list[tuple[_Params, tuple[str, ...]]]) -> None:
    _read_together(conn, _CONSENTED, keys)


def _read_together(
    conn: sa.Connection, statement: KeyedSelect, keys: list[tuple[_Params, tuple[str, ...]]]
) -> None:
    """Every declared lookup of a batch, one statement per distinct ``params`` (usually one),
    recorded in the batch's memo as (indexes asked, indexes found)."""
    memo = batch_memo(conn)
    if memo is None:
        return
    asked: dict[_Params, set[str]] = {}
    for params, indexes in keys:
        asked.setdefault(params, set()).update(indexes)
    for params, wanted in asked.items():
        found = set(statement.scalars(conn, dict(params), list(wanted)))
        memo[(statement, *sorted(params))] = (wanted, found)


def _present(
    conn: sa.Connection, select: KeyedSelect, params: dict[str, str], indexes: Sequence[str]
) -> set[str]:
    """The ``indexes`` that have a row matching ``params``, read now (not ahead)."""
    return set(select.scalars(conn, params, indexes))


def evaluate(
    conn: sa.Connection,
    *,
    account_id: str,
    mode: str,
    policy: AccountPolicy,
    numbers: Sequence[str],
    indexes: Sequence[str],
    message_type: MessageType,
    now: datetime,
    send_at: datetime,
    system_reply: bool = False,
) -> list[Decision]:
    """One decision per recipient, in order.

    A system reply (the confirmation of an opt-out, a help answer) answers the person who just
    wrote to us: it is exempt from the suppression list, so an opt-out can be confirmed.
    """
    blocked = set() if system_reply else suppressed_indexes(conn, account_id, mode, indexes)
    needs_consent = message_type == "marketing" and policy.marketing_requires_consent
    consented = (
        consented_indexes(conn, account_id, mode, indexes, "marketing") if needs_consent else set()
    )
    decisions = []
    for number, index in zip(numbers, indexes, strict=True):
        if index in blocked:
            decisions.append(Decision("rejected", RecipientOptedOut.code))
        elif needs_consent and index not in consented:
            decisions.append(Decision("rejected", ConsentRequired.code))
        else:
            decisions.append(_timing(policy, number, message_type, now, send_at))
    return decisions


def _timing(
    policy: AccountPolicy, number: str, message_type: MessageType, now: datetime, send_at: datetime
) -> Decision:
    due = send_at
    if message_type == "marketing":
        opens = next_allowed(send_at, timezones_of(number), window_of(policy), policy.timezone)
        if opens is not None:
            if policy.quiet_hours_policy == "reject":
                return Decision("rejected", QuietHours.code)
            due = opens
    return Decision("queued" if due <= now else "scheduled", None, due)


def identify(content: str, policy: AccountPolicy, message_type: MessageType) -> str:
    """Marketing text carries the sender's name and the opt-out line; other text is unchanged."""
    if message_type != "marketing":
        return content
    return add_identification(
        content, policy.organization_name, policy.opt_out_template or DEFAULT_OPT_OUT_TEMPLATE
    )
