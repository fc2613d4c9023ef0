"""Typed results built from the gateway's camelCase JSON.

Fields holding personal data (numbers, message text) or secrets are excluded from ``repr`` so a
result can be logged or shown in a traceback safely. ``raw`` keeps the full JSON for fields this
SDK version does not model yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, TypeVar

When = TypeVar("When", date, datetime)
MessageType = Literal["transactional", "marketing"]
MessageStatus = Literal[
    "pending",
    "scheduled",
    "queued",
    "sent",
    "unknown",
    "delivered",
    "failed",
    "rejected",
    "partly_delivered",
]
"""A message's overall status. ``partly_delivered``: every recipient is final, some were
delivered and some failed or were rejected (a self-hosted gateway's addition; see
``Message.recipient_counts`` for how many of each). ``unknown``: the gateway lost a carrier's
answer in a crash and will not send again; a later delivery receipt settles it (see
docs/carriers.md)."""


def _iso(value: Any, parse: Callable[[str], When]) -> When | None:
    """An ISO 8601 string parsed, or None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse(value)
    except ValueError:
        return None


def _datetime(value: Any) -> datetime | None:
    return _iso(value, datetime.fromisoformat)


def _date(value: Any) -> date | None:
    return _iso(value, date.fromisoformat)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if _int(v) is not None}


def _strs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


@dataclass(frozen=True, slots=True)
class Recipient:
    to: str = field(repr=False)
    status: str
    error_code: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recipient:
        return cls(
            to=str(data.get("to", "")),
            status=str(data.get("status", "")),
            error_code=_str(data.get("errorCode")),
        )


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    status: str
    sid: str | None = None
    channel: str = "sms"
    to: list[str] = field(default_factory=list, repr=False)
    from_: str | None = field(default=None, repr=False)
    content: str | None = field(default=None, repr=False)
    cost: Any = None
    currency: str | None = None
    segments: int | None = None
    encoding: str | None = None
    type: str | None = None
    created_at: datetime | None = None
    scheduled_for: datetime | None = None
    sent_at: datetime | None = None
    """When a carrier first accepted one of its recipients; None before."""
    recipients: list[Recipient] = field(default_factory=list, repr=False)
    recipient_counts: dict[str, int] = field(default_factory=dict)
    """How many recipients are in each status, e.g. ``{"delivered": 1, "failed": 1}``; empty
    when the server does not report it."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        recipients = data.get("recipients")
        return cls(
            id=str(data.get("id", "")),
            status=str(data.get("status", "")),
            sid=_str(data.get("sid")),
            channel=str(data.get("channel") or "sms"),
            to=_strs(data.get("to")),
            from_=_str(data.get("from")),
            content=_str(data.get("content")),
            cost=data.get("cost"),
            currency=_str(data.get("currency")),
            segments=_int(data.get("segments")),
            encoding=_str(data.get("encoding")),
            type=_str(data.get("type")),
            created_at=_datetime(data.get("createdAt")),
            scheduled_for=_datetime(data.get("scheduledFor") or data.get("scheduledAt")),
            sent_at=_datetime(data.get("sentAt")),
            recipients=[
                Recipient.from_json(item)
                for item in (recipients if isinstance(recipients, list) else [])
                if isinstance(item, Mapping)
            ],
            recipient_counts=_counts(data.get("recipientCounts")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: list[Message]
    total: int
    page: int
    pages: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MessagePage:
        items = data.get("messages")
        return cls(
            messages=[
                Message.from_json(item)
                for item in (items if isinstance(items, list) else [])
                if isinstance(item, Mapping)
            ],
            total=_int(data.get("total")) or 0,
            page=_int(data.get("page")) or 1,
            pages=_int(data.get("pages")) or 0,
        )


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    url: str
    events: list[str] = field(default_factory=list)
    description: str | None = None
    secret: str | None = field(default=None, repr=False)
    """Shown once, by ``create`` and ``rotate_secret``; None otherwise."""
    created_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WebhookEndpoint:
        return cls(
            id=str(data.get("id", "")),
            url=str(data.get("url", "")),
            events=_strs(data.get("events")),
            description=_str(data.get("description")),
            secret=_str(data.get("secret")),
            created_at=_datetime(data.get("createdAt")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    id: str
    status: str | None = None
    event: str | None = None
    attempts: int | None = None
    response_status: int | None = None
    created_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WebhookDelivery:
        return cls(
            id=str(data.get("id", "")),
            status=_str(data.get("status")),
            event=_str(data.get("event")),
            attempts=_int(data.get("attempts")),
            response_status=_int(data.get("responseStatus")),
            created_at=_datetime(data.get("createdAt")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str | None = None
    mode: str | None = None
    scopes: list[str] = field(default_factory=list)
    key: str | None = field(default=None, repr=False)
    """The secret key itself: returned once by ``create`` and ``rotate``; None otherwise."""
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApiKey:
        return cls(
            id=str(data.get("id", "")),
            name=_str(data.get("name")),
            mode=_str(data.get("mode")),
            scopes=_strs(data.get("scopes")),
            key=_str(data.get("key")),
            created_at=_datetime(data.get("createdAt")),
            expires_at=_datetime(data.get("expiresAt")),
            revoked_at=_datetime(data.get("revokedAt")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Consent:
    phone: str = field(repr=False)
    purpose: str | None = None
    source: str | None = None
    evidence: str | None = field(default=None, repr=False)
    created_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Consent:
        return cls(
            phone=str(data.get("phone", "")),
            purpose=_str(data.get("purpose")),
            source=_str(data.get("source")),
            evidence=_str(data.get("evidence")),
            created_at=_datetime(data.get("createdAt")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Suppression:
    phone: str = field(repr=False)
    reason: str | None = None
    created_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Suppression:
        return cls(
            phone=str(data.get("phone", "")),
            reason=_str(data.get("reason")),
            created_at=_datetime(data.get("createdAt")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class WebhookSecret:
    secret: str = field(repr=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WebhookSecret:
        return cls(secret=str(data.get("secret", "")), raw=dict(data))


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """One channel's counts: ``sent`` recipients accepted for sending, of those ``delivered``
    and ``failed``; ``cost`` in the report's currency."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    cost: int | float = 0

    @property
    def delivery_rate(self) -> float | None:
        return self.delivered / self.sent if self.sent else None

    @classmethod
    def from_json(cls, data: Any) -> ChannelStats:
        data = data if isinstance(data, Mapping) else {}
        cost = data.get("cost")
        return cls(
            sent=_int(data.get("sent")) or 0,
            delivered=_int(data.get("delivered")) or 0,
            failed=_int(data.get("failed")) or 0,
            cost=cost if isinstance(cost, int | float) and not isinstance(cost, bool) else 0,
        )


@dataclass(frozen=True, slots=True)
class AnalyticsOverview:
    """Totals over a period of UTC days (``start`` and ``end`` included)."""

    start: date | None
    end: date | None
    totals: ChannelStats
    currency: str | None = None
    channels: dict[str, ChannelStats] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AnalyticsOverview:
        period = data.get("period")
        period = period if isinstance(period, Mapping) else {}
        totals = data.get("totals")
        channels = data.get("channels")
        return cls(
            start=_date(period.get("from")),
            end=_date(period.get("to")),
            totals=ChannelStats.from_json(totals),
            currency=_str(totals.get("currency")) if isinstance(totals, Mapping) else None,
            channels={
                str(name): ChannelStats.from_json(stats)
                for name, stats in (channels.items() if isinstance(channels, Mapping) else ())
                if isinstance(stats, Mapping) and stats
            },
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class DailyStats:
    date: date | None
    sms: ChannelStats

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DailyStats:
        return cls(date=_date(data.get("date")), sms=ChannelStats.from_json(data.get("sms")))


@dataclass(frozen=True, slots=True)
class AnalyticsDaily:
    """Each of the last ``days`` UTC days, oldest first."""

    days: int
    data: list[DailyStats] = field(default_factory=list)
    currency: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AnalyticsDaily:
        items = data.get("data")
        return cls(
            days=_int(data.get("days")) or 0,
            data=[
                DailyStats.from_json(item)
                for item in (items if isinstance(items, list) else [])
                if isinstance(item, Mapping)
            ],
            currency=_str(data.get("currency")),
            raw=dict(data),
        )
