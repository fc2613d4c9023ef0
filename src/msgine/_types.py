"""Typed results built from the gateway's camelCase JSON.

Fields holding personal data (numbers, message text) or secrets are excluded from ``repr`` so a
result can be logged or shown in a traceback safely. ``raw`` keeps the full JSON for fields this
SDK version does not model yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

MessageType = Literal["transactional", "marketing"]
#: ``unknown``: the gateway lost a carrier's answer in a crash and will not send again; a later
#: delivery receipt settles it (see docs/carriers.md).
MessageStatus = Literal[
    "pending", "scheduled", "queued", "sent", "unknown", "delivered", "failed", "rejected"
]


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
    recipients: list[Recipient] = field(default_factory=list, repr=False)
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
            scheduled_for=_datetime(data.get("scheduledFor")),
            recipients=[
                Recipient.from_json(item)
                for item in (recipients if isinstance(recipients, list) else [])
                if isinstance(item, Mapping)
            ],
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
