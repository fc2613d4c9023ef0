"""Quiet hours: when a marketing message may reach a recipient, in the recipient's local time.

A number may map to several time zones (many mobile ranges do). Sending must then be allowed in
every one of them at the same instant, so nobody who might hold the number is woken up.

Only marketing messages are subject to this. Transactional messages (one-time codes, alerts the
recipient asked for) are exempt: delaying them defeats their purpose.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# A common window, if the zones have one, repeats daily; two days also cover DST changes.
_HORIZON = timedelta(hours=48)
# Offset changes are searched for at this step; zones never change twice within an hour.
_TRANSITION_STEP_SECONDS = 3600


@dataclass(frozen=True)
class QuietWindow:
    """Local wall-clock hours in which sending is allowed: ``start <= t < end``.

    A window with ``end <= start`` wraps past midnight (``time(22) .. time(6)``); ``end`` of
    ``time(0)`` means "until midnight".
    """

    start: time = time(8, 0)
    end: time = time(21, 0)

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("quiet window times are local wall-clock times, without tzinfo")
        if self.start == self.end:
            raise ValueError("quiet window start and end must differ")

    def allows(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    """ZoneInfo keeps only 8 zones alive by itself; a number can map to 40 (North America)."""
    return ZoneInfo(name)


def _resolve(zones: Sequence[str], fallback_zone: str) -> list[ZoneInfo]:
    """Zones that exist in the time-zone database; the fallback zone when none do."""
    resolved = []
    for name in dict.fromkeys(zones):
        try:
            resolved.append(_zone(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return resolved or [_zone(fallback_zone)]


def _allowed(instant: datetime, zones: Sequence[ZoneInfo], window: QuietWindow) -> bool:
    return all(window.allows(instant.astimezone(zone).time()) for zone in zones)


def _openings(
    zone: ZoneInfo, window: QuietWindow, start: datetime, end: datetime
) -> Iterator[datetime]:
    """Instants at which the local clock reads ``window.start`` (both readings in a DST fold)."""
    day = start.astimezone(zone).date() - timedelta(days=1)
    last: date = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        local = datetime.combine(day, window.start)
        for fold in (0, 1):
            yield local.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        day += timedelta(days=1)


def _offset(zone: ZoneInfo, timestamp: int) -> timedelta | None:
    return datetime.fromtimestamp(timestamp, zone).utcoffset()


def _transitions(zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """Instants at which the zone's UTC offset changes; the local clock jumps there.

    A jump forward over ``window.start`` (a DST gap) opens the window at the jump itself, an
    instant at which the local clock never reads ``window.start``.
    """
    at, until = int(start.timestamp()), int(end.timestamp()) + 1
    offset = _offset(zone, at)
    while at < until:
        step = min(at + _TRANSITION_STEP_SECONDS, until)
        step_offset = _offset(zone, step)
        if step_offset != offset:
            low, high = at, step
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(zone, middle) == offset:
                    low = middle
                else:
                    high = middle
            yield datetime.fromtimestamp(high, UTC)
        at, offset = step, step_offset


def _candidates(
    zone: ZoneInfo, window: QuietWindow, start: datetime, end: datetime
) -> list[datetime]:
    """Every instant in (start, end] at which the window may open in ``zone``."""
    found = [*_openings(zone, window, start, end), *_transitions(zone, start, end)]
    return [instant for instant in found if start < instant <= end]


def _as_utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def next_allowed(
    now: datetime,
    zones: Sequence[str],
    window: QuietWindow = QuietWindow(),
    fallback_zone: str = "UTC",
) -> datetime | None:
    """None when sending is allowed now in every zone, else the earliest UTC instant when it is.

    The window opens, in some zone, at the earliest common instant, so only the instants at which
    a zone's window opens (its start time, both readings in a DST fold, and DST jumps) need
    checking. If the zones share no allowed instant in the next 48 hours (zones 12+ hours
    apart), the answer is the latest of the zones' own next openings: the message then arrives
    in allowed hours in the zone that opens last, and waiting longer would not help.
    Zones unknown to the time-zone database are ignored; with none left, ``fallback_zone`` is used.
    """
    now = _as_utc(now)
    resolved = _resolve(zones, fallback_zone)
    if _allowed(now, resolved, window):
        return None
    horizon = now + _HORIZON
    per_zone = {zone: _candidates(zone, window, now, horizon) for zone in resolved}
    for instant in sorted({instant for found in per_zone.values() for instant in found}):
        if _allowed(instant, resolved, window):
            return instant
    return max(_first_allowed_in(zone, found, now, window) for zone, found in per_zone.items())


def _first_allowed_in(
    zone: ZoneInfo, candidates: list[datetime], now: datetime, window: QuietWindow
) -> datetime:
    if _allowed(now, [zone], window):
        return now
    # A non-empty daily window opens at least once in any 48 hours.
    return min(instant for instant in candidates if _allowed(instant, [zone], window))


def is_quiet(
    now: datetime,
    zones: Sequence[str],
    window: QuietWindow = QuietWindow(),
    fallback_zone: str = "UTC",
) -> bool:
    """Whether sending now falls outside the window in at least one of the zones."""
    return not _allowed(_as_utc(now), _resolve(zones, fallback_zone), window)
