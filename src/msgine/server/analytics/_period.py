"""The days a report covers: parsed and checked here, so every entry point refuses the same."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from msgine.server.errors import InvalidRequest

#: ``daily``'s limits (MsGine's documented range) and default.
MIN_DAYS, MAX_DAYS, DEFAULT_DAYS = 1, 90, 30


@dataclass(frozen=True)
class Period:
    """Whole UTC days, both ends included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def each_day(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range(self.days)]


def parse_day(value: str, field: str) -> date:
    """A date (``2026-01-31``) or an ISO 8601 date and time, taken as its UTC day (a time
    without a zone is UTC): counters are kept per UTC day."""
    text = value.strip()
    try:
        if len(text) <= 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"'{field}' must be a date (YYYY-MM-DD) or an ISO 8601 date and time.",
            details={"field": field},
        ) from None
    return (moment if moment.tzinfo is None else moment.astimezone(UTC)).date()


def period_of(start: str | None, end: str | None, *, today: date) -> Period:
    """``from``/``to`` as the API takes them; a missing end is today, a missing start the
    30 days up to the end."""
    last = parse_day(end, "to") if end else today
    first = parse_day(start, "from") if start else _days_before(last, DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidRequest("'from' is after 'to'.", details={"field": "from"})
    return Period(first, last)


def _days_before(day: date, days: int) -> date:
    try:
        return day - timedelta(days=days)
    except OverflowError:  # near year 1: the period starts at the first day there is
        return date.min


def last_days(days: int, *, today: date) -> Period:
    """The ``days`` days up to and including today."""
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise InvalidRequest(
            f"'days' must be {MIN_DAYS} to {MAX_DAYS}.",
            details={"field": "days", "min": MIN_DAYS, "max": MAX_DAYS},
        )
    return Period(today - timedelta(days=days - 1), today)
