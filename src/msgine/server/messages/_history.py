"""The status history of each recipient: its time columns, plus a ``status_events`` row only
for a step those columns cannot tell.

``recipients`` keeps when it was accepted (its message's ``created_at``), sent, delivered and
failed, its carrier, carrier message id and final error code. A step that says no more than
that (queued at acceptance; sent to the carrier it is with; delivered or failed with the final
error code and no carrier detail) is rebuilt from them when read; a step that carries more (a
carrier's state word or failover reason, an error code the row no longer holds, another
carrier, a status with no time column such as ``unknown`` or a later ``rejected``, scheduled
or rejected at acceptance) is stored. A one-recipient message delivered through a carrier
without receipt details so stores no history row at all, where it stored three.

Both halves live here so the rule that skips a row and the rule that rebuilds it are one. The
rebuilt timeline is the one the stored rows gave before (same steps, fields and order,
ordered by time and then as they were recorded). One corner cannot be rebuilt: a recipient
that reached ``sent`` twice, the first time plainly, shows only the later one (no path does
that today: a submit is not repeated once a recipient was sent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from msgine.server.storage import messages, recipients, status_events

#: The time column of each status that has one.
TIME_COLUMN = {"sent": "sent_at", "delivered": "delivered_at", "failed": "failed_at"}
_FINAL = frozenset({"delivered", "failed", "rejected"})


def initial_kept(status: str, error_code: str | None) -> bool:
    """Whether a recipient's status at acceptance needs a row (only plain ``queued`` does not)."""
    return status != "queued" or error_code is not None


def change_kept(
    status: str,
    *,
    error_code: str | None,
    carrier: str | None,
    detail: str | None,
    recipient: Mapping[Any, Any],
) -> bool:
    """Whether a status change needs a row; ``recipient``: its row as the change left it."""
    if detail is not None or status not in TIME_COLUMN:
        return True
    if status == "sent":
        return error_code is not None or carrier != recipient["carrier"]
    return carrier is not None  # delivered or failed: the row holds its final error code


def _rebuilt(status: str, at: datetime, recipient: Mapping[Any, Any]) -> dict[str, Any]:
    final = status in _FINAL
    return {
        "message_id": recipient["message_id"],
        "recipient_id": recipient["id"],
        "status": status,
        "error_code": recipient["error_code"] if final else None,
        "carrier_message_id": None if status == "queued" else recipient["carrier_message_id"],
        "occurred_at": at,
        "carrier": recipient["carrier"] if status == "sent" else None,
        "detail": None,
    }


def timeline(
    accepted_at: datetime, recipient: Mapping[Any, Any], stored: Sequence[Mapping[Any, Any]]
) -> list[dict[str, Any]]:
    """One recipient's steps, oldest first: ``stored``, its ``status_events`` rows in the order
    recorded, with the steps its row tells merged in where they were recorded."""
    steps = [dict(row) for row in stored]
    # What is stored already (every row was, before 0013): never shown twice.
    statuses = {(row["status"], row["occurred_at"]) for row in steps}
    initial = ("queued", accepted_at) in {
        (row["status"], row["occurred_at"]) for row in steps if row["detail"] is None
    }
    rejected_at_acceptance = recipient["status"] == "rejected" and recipient["failed_at"]
    scheduled = any(row["status"] == "scheduled" for row in steps)
    if not (initial or rejected_at_acceptance or scheduled):
        _insert(steps, _rebuilt("queued", accepted_at, recipient), lambda row: True)
    sent_at = recipient["sent_at"]
    if sent_at is not None and ("sent", sent_at) not in statuses:
        _insert(
            steps,
            _rebuilt("sent", sent_at, recipient),
            lambda row: row["occurred_at"] > sent_at or row["status"] in _FINAL,
        )
    final = recipient["status"]
    final_at = recipient.get(TIME_COLUMN.get(final, ""))
    if final in ("delivered", "failed") and final_at and (final, final_at) not in statuses:
        _insert(steps, _rebuilt(final, final_at, recipient), lambda row: False)
    return steps


def _insert(steps: list[dict[str, Any]], step: dict[str, Any], recorded_after: Any) -> None:
    """Put ``step`` before the first row later in time, or at its time and recorded after it."""
    at = step["occurred_at"]
    for position, row in enumerate(steps):
        if row["occurred_at"] > at or (row["occurred_at"] == at and recorded_after(row)):
            steps.insert(position, step)
            return
    steps.append(step)


def recorded(conn: sa.Connection, message_id: str) -> dict[str, list[Mapping[Any, Any]]]:
    """The message's ``status_events`` rows by recipient id, in the order recorded."""
    stored: dict[str, list[Mapping[Any, Any]]] = {}
    for step in conn.execute(
        sa.select(status_events)
        .where(status_events.c.message_id == message_id)
        .order_by(status_events.c.occurred_at, status_events.c.id)
    ).mappings():
        stored.setdefault(step["recipient_id"], []).append(step)
    return stored


def timelines(
    conn: sa.Connection, message: Mapping[Any, Any], rows: Sequence[Mapping[Any, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """The steps of each of ``rows`` (the message's recipients): recipient id -> steps."""
    stored = recorded(conn, message["id"])
    return {
        row["id"]: timeline(message["created_at"], row, stored.get(row["id"], [])) for row in rows
    }


def status_history(conn: sa.Connection, message_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every recipient's steps (recipient id -> steps, oldest first), in position order."""
    message = conn.execute(sa.select(messages).where(messages.c.id == message_id)).mappings().one()
    rows = conn.execute(
        sa.select(recipients)
        .where(recipients.c.message_id == message_id)
        .order_by(recipients.c.position)
    ).mappings()
    return timelines(conn, message, list(rows))
