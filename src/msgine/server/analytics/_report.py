"""Reading the counters: an overview of a period and a day-by-day series.

Both read only the counter rows of one account, mode and channel in the period (an index
range of at most a few rows per day), so they take the same time at a thousand messages or
a hundred million.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from msgine.server.analytics._counters import CHANNEL
from msgine.server.analytics._period import Period
from msgine.server.storage import daily_message_counts as counts


@dataclass(frozen=True)
class ChannelStats:
    """One channel's counts (see ``_counters`` for their rules); ``cost`` in the report's
    currency."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    cost: int = 0

    @property
    def delivery_rate(self) -> float | None:
        """Delivered share of what was sent, or None when nothing was."""
        return self.delivered / self.sent if self.sent else None

    def as_json(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "failed": self.failed,
            "cost": self.cost,
        }


@dataclass(frozen=True)
class Overview:
    period: Period
    sms: ChannelStats
    currency: str
    #: The cost in each currency (one entry unless messages were priced in several).
    cost_by_currency: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """MsGine's shape, plus ``costByCurrency``."""
        return {
            "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "totals": {**self.sms.as_json(), "currency": self.currency},
            "channels": {"sms": self.sms.as_json()},
            "costByCurrency": dict(self.cost_by_currency),
        }


@dataclass(frozen=True)
class DailyPoint:
    day: date
    sms: ChannelStats


@dataclass(frozen=True)
class Daily:
    period: Period
    points: list[DailyPoint]
    currency: str

    def as_json(self) -> dict[str, Any]:
        """MsGine's shape (email and push empty: this gateway sends SMS only), plus
        ``currency``."""
        return {
            "days": self.period.days,
            "currency": self.currency,
            "data": [
                {"date": p.day.isoformat(), "sms": p.sms.as_json(), "email": {}, "push": {}}
                for p in self.points
            ],
        }


def _rows(conn: sa.Connection, account_id: str, mode: str, period: Period) -> list[Any]:
    return list(
        conn.execute(
            sa.select(
                counts.c.day,
                counts.c.currency,
                counts.c.sent,
                counts.c.delivered,
                counts.c.failed,
                counts.c.cost,
            ).where(
                counts.c.account_id == account_id,
                counts.c.mode == mode,
                counts.c.channel == CHANNEL,
                counts.c.day >= period.start,
                counts.c.day <= period.end,
            )
        ).mappings()
    )


def _currency(rows: Iterable[Mapping[str, Any]], default: str) -> str:
    """The report's currency: that of most of the recipients sent, or ``default`` when none
    were (ties go to ``default``, then alphabetical order)."""
    sent: dict[str, int] = {}
    for row in rows:
        sent[row["currency"]] = sent.get(row["currency"], 0) + row["sent"]
    if not sent:
        return default
    return min(sent, key=lambda c: (-sent[c], c != default, c))


def _sum(rows: Iterable[Mapping[str, Any]], currency: str) -> ChannelStats:
    sent = delivered = failed = cost = 0
    for row in rows:
        sent += row["sent"]
        delivered += row["delivered"]
        failed += row["failed"]
        cost += row["cost"] if row["currency"] == currency else 0
    return ChannelStats(sent, delivered, failed, cost)


def overview(
    conn: sa.Connection, account_id: str, mode: str, period: Period, *, default_currency: str
) -> Overview:
    """The period's totals for one account and mode."""
    rows = _rows(conn, account_id, mode, period)
    currency = _currency(rows, default_currency)
    by_currency: dict[str, int] = {}
    for row in rows:
        by_currency[row["currency"]] = by_currency.get(row["currency"], 0) + row["cost"]
    return Overview(period, _sum(rows, currency), currency, by_currency)


def daily(
    conn: sa.Connection, account_id: str, mode: str, period: Period, *, default_currency: str
) -> Daily:
    """Every day of the period in order, zeros where nothing was sent."""
    rows = _rows(conn, account_id, mode, period)
    currency = _currency(rows, default_currency)
    by_day: dict[date, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_day.setdefault(row["day"], []).append(row)
    points = [DailyPoint(day, _sum(by_day.get(day, ()), currency)) for day in period.each_day()]
    return Daily(period, points, currency)
