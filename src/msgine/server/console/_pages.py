"""What the data pages (overview, messages, webhooks, compliance, audit, carriers) share: the
mode a page shows, optional query fields, and the template filters for times and money.

Query fields arrive as text, an empty form field as ``""``: each is read here, so a bad value
is a clear 400 page (``InvalidRequest``), never a 500 and never echoed back unescaped.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from msgine.server.errors import InvalidRequest

from ._masking import mask_phone
from ._web import templates

MODES: Final = ("live", "test")


def mode_of(value: str | None, *, default: str | None = "live") -> str | None:
    """``live`` or ``test`` (``default`` when absent or empty)."""
    if not value:
        return default
    if value not in MODES:
        raise InvalidRequest("mode is live or test.", details={"field": "mode"})
    return value


def text_of(value: str | None) -> str | None:
    """A text field, trimmed; None when empty."""
    cleaned = (value or "").strip()
    return cleaned or None


def day_of(value: str | None, field: str) -> date | None:
    """A ``YYYY-MM-DD`` field (what ``<input type=date>`` sends); None when empty."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{field} is a date (YYYY-MM-DD).", details={"field": field}) from None


def start_of(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def end_of(day: date) -> datetime:
    """The first instant after ``day``: date ranges include their last day."""
    return start_of(day) + timedelta(days=1)


def when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def money(amount: int | None, currency: str | None = "") -> str:
    """Minor units as stored (the gateway prices in whole units of the currency)."""
    return "" if amount is None else f"{amount:,} {currency or ''}".strip()


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


templates.filters.update(
    when=when, money=money, percent=percent, seconds=seconds, masked=mask_phone
)
