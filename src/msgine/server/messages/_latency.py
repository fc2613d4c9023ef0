"""Receipt latency: how long carriers take from accepting a message to reporting it delivered.

The per-day counters hold counts, not times, so this reads recipients, but never all of them:
each day is a sample of its newest ``sample`` delivered recipients, found by walking the
account's ``(account_id, created_at)`` index backwards from the day's end. A day costs one
bounded query whatever the traffic, and a median of a few hundred receipts is what a chart
of a month can show anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

import sqlalchemy as sa

from msgine.server.storage import messages, recipients

SAMPLE: Final = 200


@dataclass(frozen=True)
class LatencyPoint:
    day: date
    samples: int
    median_seconds: float | None
    p95_seconds: float | None


def _quantile(ordered: Sequence[float], share: float) -> float:
    """Nearest-rank quantile of sorted values."""
    rank = max(1, round(share * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def receipt_latency(
    conn: sa.Connection, account_id: str, mode: str, days: Sequence[date], *, sample: int = SAMPLE
) -> list[LatencyPoint]:
    """For each day (by the messages' acceptance, UTC), the median and 95th percentile of
    sent-to-delivered time over up to ``sample`` of its newest delivered recipients."""
    points = []
    for day in days:
        start = datetime.combine(day, time(), tzinfo=UTC)
        rows = conn.execute(
            sa.select(recipients.c.sent_at, recipients.c.delivered_at)
            .join(messages, messages.c.id == recipients.c.message_id)
            .where(
                messages.c.account_id == account_id,
                messages.c.mode == mode,
                messages.c.created_at >= start,
                messages.c.created_at < start + timedelta(days=1),
                recipients.c.sent_at.is_not(None),
                recipients.c.delivered_at.is_not(None),
            )
            .order_by(messages.c.created_at.desc())
            .limit(sample)
        ).all()
        waits = sorted(max((done - sent).total_seconds(), 0.0) for sent, done in rows)
        points.append(
            LatencyPoint(
                day,
                len(waits),
                _quantile(waits, 0.5) if waits else None,
                _quantile(waits, 0.95) if waits else None,
            )
        )
    return points
