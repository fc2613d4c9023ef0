"""Writing the per-day counters, in the transaction of the change they count.

What each counter counts (THE rules; docs/analytics.md describes these functions):

- ``sent``: recipients accepted for sending, i.e. every recipient of a new message that was not
  rejected at acceptance (opt-out, missing consent, limits, geo rules). One recipient is one
  SMS to one number, however many segments it has.
- ``delivered``: of those, the recipients that reached ``delivered``.
- ``failed``: of those, the recipients that ended ``failed`` (carrier refusal, no route, submit
  retries spent) or ``rejected`` after acceptance (an opt-out that arrived before submission).
- ``cost``: the messages' cost (segments x each accepted recipient's price), in their currency.

So ``sent - delivered - failed`` is what is still on its way. Everything counts on the UTC day
the message was due (``scheduledFor``, else when it was accepted), so a day's delivery rate
compares like with like however late a receipt comes.

Each row is an additive upsert (``INSERT .. ON CONFLICT DO UPDATE SET n = n + excluded.n``),
deferred to the end of the group-committed batch and merged there: a batch of a thousand sends
of one account writes its day's row once, which keeps SQLite's one write lock short, and rows
are written in key order, so concurrent PostgreSQL transactions lock them in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from msgine.server.storage import Direct, daily_message_counts

CHANNEL = "sms"
COUNTS = ("sent", "delivered", "failed", "cost")
_KEY = ("account_id", "mode", "channel", "day", "currency")


def _merge(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per key, its increments summed; in key order (a fixed lock order)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[name] for name in _KEY)
        found = merged.get(key)
        if found is None:
            merged[key] = dict(row)
        else:
            for name in COUNTS:
                found[name] += row[name]
    return [merged[key] for key in sorted(merged)]


def _upsert(insert: Callable[[Any], Any]) -> Direct:
    statement = insert(daily_message_counts)
    table = daily_message_counts.c
    return Direct(
        statement.on_conflict_do_update(
            index_elements=list(_KEY),
            set_={name: table[name] + statement.excluded[name] for name in COUNTS},
        ),
        merge=_merge,
    )


_UPSERT = {"sqlite": _upsert(sqlite.insert), "postgresql": _upsert(postgresql.insert)}


def count(
    conn: sa.Connection,
    *,
    account_id: str,
    mode: str,
    due: datetime,
    currency: str,
    sent: int = 0,
    delivered: int = 0,
    failed: int = 0,
    cost: int = 0,
) -> None:
    """Add to the counters of the day ``due`` falls on (UTC), in ``conn``'s transaction."""
    if not (sent or delivered or failed or cost):
        return
    row = {
        "account_id": account_id,
        "mode": mode,
        "channel": CHANNEL,
        "day": due.astimezone(UTC).date(),
        "currency": currency,
        "sent": sent,
        "delivered": delivered,
        "failed": failed,
        "cost": cost,
    }
    _UPSERT[conn.dialect.name].defer(conn, [row])
