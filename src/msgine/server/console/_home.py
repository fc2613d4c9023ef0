"""``/console/``: the overview. Today and the last 30 days: sent, delivered, failed, delivery
rate, cost and receipt latency, as numbers and as charts drawn on the server (``_charts``).

Counts and costs come from the per-day counters (``msgine.server.analytics``, the service the
analytics API answers from), so the page costs the same at any volume; receipt latency from a
bounded sample per day (``receipt_latency``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from msgine.server.analytics import Analytics, ChannelStats, Daily
from msgine.server.messages import LatencyPoint, receipt_latency

from ._charts import Chart, line_chart, stacked_bars
from ._pages import mode_of
from ._web import ConsoleUser, render, require, runtime_of

router = APIRouter()
DAYS: Final = 30


@dataclass(frozen=True)
class Totals:
    stats: ChannelStats
    currency: str
    median_latency: float | None

    @property
    def on_the_way(self) -> int:
        return max(self.stats.sent - self.stats.delivered - self.stats.failed, 0)


@router.get("/")
async def home(
    request: Request, mode: str | None = None, user: ConsoleUser = Depends(require("console:view"))
) -> Response:
    shown = mode_of(mode) or "live"
    runtime = runtime_of(request)
    analytics = Analytics(runtime)
    series = await analytics.daily(user.account_id, shown, days=DAYS)
    days = [point.day for point in series.points]
    latency = await runtime.db.aread(
        lambda conn: receipt_latency(conn, user.account_id, shown, days)
    )
    today = series.points[-1]
    return render(
        request,
        "home.html",
        mode=shown,
        today=Totals(today.sms, series.currency, latency[-1].median_seconds),
        month=Totals(_sum(series), series.currency, _pooled_median(latency)),
        charts=charts(series, latency),
    )


def _sum(series: Daily) -> ChannelStats:
    points = [p.sms for p in series.points]
    return ChannelStats(
        sent=sum(p.sent for p in points),
        delivered=sum(p.delivered for p in points),
        failed=sum(p.failed for p in points),
        cost=sum(p.cost for p in points),
    )


def _pooled_median(points: list[LatencyPoint]) -> float | None:
    """The median of the days' medians, weighted by their samples (close enough for a tile)."""
    weighted = sorted((p.median_seconds, p.samples) for p in points if p.median_seconds is not None)
    half, seen = sum(n for _, n in weighted) / 2, 0
    for value, samples in weighted:
        seen += samples
        if seen >= half:
            return value
    return None


def charts(series: Daily, latency: list[LatencyPoint]) -> list[tuple[str, Chart]]:
    """The overview's charts, each with an id for its labels."""
    labels = [p.day.strftime("%d %b") for p in series.points]
    sms = [p.sms for p in series.points]
    return [
        (
            "volume",
            stacked_bars(
                f"Messages per day, last {DAYS} days",
                labels,
                ["delivered", "failed", "on the way"],
                [[s.delivered, s.failed, max(s.sent - s.delivered - s.failed, 0)] for s in sms],
            ),
        ),
        (
            "rate",
            line_chart(
                "Delivery rate per day (%)",
                labels,
                "delivery rate",
                [None if s.delivery_rate is None else s.delivery_rate * 100 for s in sms],
                top=100,
            ),
        ),
        (
            "cost",
            stacked_bars(
                f"Cost per day ({series.currency})", labels, ["cost"], [[s.cost] for s in sms]
            ),
        ),
        (
            "latency",
            line_chart(
                "Receipt latency per day (median seconds, sent to delivered)",
                labels,
                "latency",
                [p.median_seconds for p in latency],
            ),
        ),
    ]
