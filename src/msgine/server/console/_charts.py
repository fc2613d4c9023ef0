"""Charts drawn on the server as inline SVG: no chart library, no script, nothing fetched.

The page's Content-Security-Policy allows no inline style or script, so a chart is geometry
only (rectangles and polylines with their coordinates computed here) and colours come from
classes in the console's stylesheet. Each chart carries a title, a one-line summary for
screen readers, and its numbers as rows, which the page also shows as a table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

WIDTH: Final = 640
HEIGHT: Final = 220
#: Room for the y-axis labels on the left and the x-axis labels below.
LEFT: Final = 48
BOTTOM: Final = 24
TOP: Final = 8


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    series: str
    label: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class XLabel:
    x: float
    label: str


@dataclass(frozen=True)
class Line:
    series: str
    points: str


@dataclass(frozen=True)
class Chart:
    title: str
    summary: str
    width: int
    height: int
    rects: tuple[Rect, ...]
    lines: tuple[Line, ...]
    ticks: tuple[Tick, ...]
    xlabels: tuple[XLabel, ...]
    series: tuple[str, ...]
    #: The numbers drawn, one row per x value: (label, values in ``series`` order).
    rows: tuple[tuple[str, tuple[str, ...]], ...]


def nice_ceiling(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(float(step * power) for step in (1, 2, 5, 10) if step * power >= value)


def _ticks(top: float, fmt: str, plot_height: float) -> tuple[Tick, ...]:
    return tuple(Tick(TOP + plot_height * (1 - i / 4), format(top * i / 4, fmt)) for i in range(5))


def _xlabels(labels: Sequence[str], slot: float) -> tuple[XLabel, ...]:
    """At most about eight labels under the axis, evenly spread, so they never overlap."""
    every = max(1, math.ceil(len(labels) / 8))
    return tuple(
        XLabel(LEFT + slot * (i + 0.5), label)
        for i, label in enumerate(labels)
        if i % every == 0 or i == len(labels) - 1
    )


def stacked_bars(
    title: str,
    labels: Sequence[str],
    series: Sequence[str],
    values: Sequence[Sequence[float]],
    *,
    fmt: str = ",.0f",
) -> Chart:
    """One bar per label, its ``series`` stacked bottom to top (``values[i][j]``: label i,
    series j)."""
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - TOP - BOTTOM
    top = nice_ceiling(max((sum(v) for v in values), default=0))
    slot = plot_w / max(len(labels), 1)
    rects: list[Rect] = []
    for i, (label, column) in enumerate(zip(labels, values, strict=True)):
        base = 0.0
        for name, value in zip(series, column, strict=True):
            if value <= 0:
                continue
            height = plot_h * value / top
            y = TOP + plot_h * (1 - (base + value) / top)
            rects.append(
                Rect(
                    round(LEFT + slot * i + slot * 0.15, 2),
                    round(y, 2),
                    round(slot * 0.7, 2),
                    round(height, 2),
                    name,
                    f"{label}: {format(value, fmt)} {name}",
                )
            )
            base += value
    totals = [sum(v) for v in values]
    return Chart(
        title=title,
        summary=f"{title}: {format(sum(totals), fmt)} in all over {len(labels)} points",
        width=WIDTH,
        height=HEIGHT,
        rects=tuple(rects),
        lines=(),
        ticks=_ticks(top, fmt, plot_h),
        xlabels=_xlabels(labels, slot),
        series=tuple(series),
        rows=tuple(
            (label, tuple(format(v, fmt) for v in column))
            for label, column in zip(labels, values, strict=True)
        ),
    )


def line_chart(
    title: str,
    labels: Sequence[str],
    name: str,
    values: Sequence[float | None],
    *,
    fmt: str = ",.1f",
    top: float | None = None,
) -> Chart:
    """One line; a point with no value (no messages that day) breaks it into segments."""
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - TOP - BOTTOM
    known = [v for v in values if v is not None]
    ceiling = top if top is not None else nice_ceiling(max(known, default=0))
    slot = plot_w / max(len(labels), 1)
    segments: list[list[str]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            segments.append([])
            continue
        x = LEFT + slot * (i + 0.5)
        y = TOP + plot_h * (1 - min(value, ceiling) / ceiling)
        segments[-1].append(f"{x:.1f},{y:.1f}")
    mean = sum(known) / len(known) if known else None
    return Chart(
        title=title,
        summary=(
            f"{title}: no data"
            if mean is None
            else f"{title}: average {format(mean, fmt)} over {len(known)} points"
        ),
        width=WIDTH,
        height=HEIGHT,
        rects=(),
        lines=tuple(Line(name, " ".join(points)) for points in segments if points),
        ticks=_ticks(ceiling, fmt, plot_h),
        xlabels=_xlabels(labels, slot),
        series=(name,),
        rows=tuple(
            (label, ("-" if v is None else format(v, fmt),))
            for label, v in zip(labels, values, strict=True)
        ),
    )
