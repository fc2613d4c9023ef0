"""Every API operation as a ``Call``: what to send and how to read the answer.

Sync and async resources both build their requests here, so the two clients cannot drift apart;
they differ only in how a ``Call`` is executed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from . import _validation as check
from ._types import (
    AnalyticsDaily,
    AnalyticsOverview,
    ApiKey,
    Consent,
    Message,
    MessagePage,
    MessageType,
    Suppression,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSecret,
)

T = TypeVar("T")
Parser = Callable[[Any], T]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Parser[T]
    json: Mapping[str, Any] | None = None
    params: Mapping[str, Any] | None = None
    idempotency_key: str | None = None


def _seg(value: str) -> str:
    """One path segment, percent-encoded so ``+`` in numbers and ``/`` in ids stay literal."""
    return quote(str(value), safe="")


def _obj(data: Any) -> Mapping[str, Any]:
    return data if isinstance(data, Mapping) else {}


def _items(data: Any, key: str) -> list[Mapping[str, Any]]:
    """A list response, whether the gateway returns a bare array or wraps it under ``key``."""
    if isinstance(data, Mapping):
        data = data.get(key, data.get("data", []))
    return [item for item in data if isinstance(item, Mapping)] if isinstance(data, list) else []


def _none(_: Any) -> None:
    return None


def _dict(data: Any) -> dict[str, Any]:
    return dict(data) if isinstance(data, Mapping) else {"data": data}


def _compact(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


# Messages


def send_sms(
    to: str | Sequence[str],
    message: str,
    *,
    from_: str | None = None,
    scheduled_for: datetime | str | None = None,
    idempotency_key: str | None = None,
    callback_url: str | None = None,
    type: MessageType | None = None,
) -> Call[Message]:
    """Validates, then fixes the idempotency key once so every retry of this send reuses it."""
    body: dict[str, Any] = {"to": check.recipients(to), "message": check.message(message)}
    if from_ is not None:
        body["from"] = check.sender_id(from_)
    if scheduled_for is not None:
        body["scheduledFor"] = check.scheduled_for(scheduled_for)
    if callback_url is not None:
        body["callbackUrl"] = check.callback_url(callback_url)
    if type is not None:
        body["type"] = check.message_type(type)
    key = check.idempotency_key(idempotency_key) if idempotency_key else str(uuid.uuid4())
    return Call("POST", "/messages/sms", lambda d: Message.from_json(_obj(d)), body, None, key)


def get_message(message_id: str) -> Call[Message]:
    return Call("GET", f"/messages/{_seg(message_id)}", lambda d: Message.from_json(_obj(d)))


def history(page: int = 1, limit: int = 20, status: str | None = None) -> Call[MessagePage]:
    check.page_limit(page, limit)
    params = _compact(page=page, limit=limit, status=status)
    return Call("GET", "/messages", lambda d: MessagePage.from_json(_obj(d)), params=params)


# Analytics


def _day(value: date | datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, date | datetime) else value


def analytics_overview(
    from_: date | datetime | str | None = None, to: date | datetime | str | None = None
) -> Call[AnalyticsOverview]:
    params = _compact(**{"from": _day(from_), "to": _day(to)})
    return Call(
        "GET",
        "/developers/analytics/overview",
        lambda d: AnalyticsOverview.from_json(_obj(d)),
        params=params,
    )


def analytics_daily(days: int = 30) -> Call[AnalyticsDaily]:
    return Call(
        "GET",
        "/developers/analytics/daily",
        lambda d: AnalyticsDaily.from_json(_obj(d)),
        params={"days": check.analytics_days(days)},
    )


# Webhook endpoints


def _endpoint(data: Any) -> WebhookEndpoint:
    return WebhookEndpoint.from_json(_obj(data))


def webhook_create(
    url: str, events: Sequence[str] | None = None, description: str | None = None
) -> Call[WebhookEndpoint]:
    body = _compact(url=url, events=list(events) if events is not None else None)
    body.update(_compact(description=description))
    return Call("POST", "/webhooks", _endpoint, body)


def webhook_list() -> Call[list[WebhookEndpoint]]:
    return Call(
        "GET", "/webhooks", lambda d: [WebhookEndpoint.from_json(i) for i in _items(d, "webhooks")]
    )


def webhook_get(webhook_id: str) -> Call[WebhookEndpoint]:
    return Call("GET", f"/webhooks/{_seg(webhook_id)}", _endpoint)


def webhook_update(
    webhook_id: str,
    *,
    url: str | None = None,
    events: Sequence[str] | None = None,
    description: str | None = None,
) -> Call[WebhookEndpoint]:
    body = _compact(url=url, events=list(events) if events is not None else None)
    body.update(_compact(description=description))
    return Call("PATCH", f"/webhooks/{_seg(webhook_id)}", _endpoint, body)


def webhook_delete(webhook_id: str) -> Call[None]:
    return Call("DELETE", f"/webhooks/{_seg(webhook_id)}", _none)


def webhook_rotate_secret(webhook_id: str, grace_hours: float | None = None) -> Call[WebhookSecret]:
    return Call(
        "POST",
        f"/webhooks/{_seg(webhook_id)}/rotate-secret",
        lambda d: WebhookSecret.from_json(_obj(d)),
        _compact(graceHours=grace_hours),
    )


def webhook_deliveries(webhook_id: str) -> Call[list[WebhookDelivery]]:
    return Call(
        "GET",
        f"/webhooks/{_seg(webhook_id)}/deliveries",
        lambda d: [WebhookDelivery.from_json(i) for i in _items(d, "deliveries")],
    )


def webhook_replay(webhook_id: str, delivery_id: str) -> Call[WebhookDelivery]:
    return Call(
        "POST",
        f"/webhooks/{_seg(webhook_id)}/deliveries/{_seg(delivery_id)}/replay",
        lambda d: WebhookDelivery.from_json(_obj(d)),
    )


def account_rotate_webhook_secret() -> Call[WebhookSecret]:
    return Call("POST", "/account/webhook-secret", lambda d: WebhookSecret.from_json(_obj(d)))


# API keys


def _key(data: Any) -> ApiKey:
    return ApiKey.from_json(_obj(data))


def key_create(
    *,
    name: str | None = None,
    mode: str | None = None,
    scopes: Sequence[str] | None = None,
    allowed_ips: Sequence[str] | None = None,
    expires_in_days: int | None = None,
    rate_limit: str | None = None,
) -> Call[ApiKey]:
    body = _compact(
        name=name,
        mode=mode,
        scopes=list(scopes) if scopes is not None else None,
        allowedIps=list(allowed_ips) if allowed_ips is not None else None,
        expiresInDays=expires_in_days,
        rateLimit=rate_limit,
    )
    return Call("POST", "/keys", _key, body)


def key_list() -> Call[list[ApiKey]]:
    return Call("GET", "/keys", lambda d: [ApiKey.from_json(i) for i in _items(d, "keys")])


def key_rotate(key_id: str, grace_hours: float | None = None) -> Call[ApiKey]:
    return Call("POST", f"/keys/{_seg(key_id)}/rotate", _key, _compact(graceHours=grace_hours))


def key_revoke(key_id: str) -> Call[ApiKey]:
    return Call("POST", f"/keys/{_seg(key_id)}/revoke", _key)


def key_compromise(key_id: str) -> Call[ApiKey]:
    return Call("POST", f"/keys/{_seg(key_id)}/compromise", _key)


# Compliance and privacy


def consent_put(
    phone: str, purpose: str, source: str, evidence: str | None = None
) -> Call[Consent]:
    body = _compact(purpose=purpose, source=source, evidence=evidence)
    return Call(
        "PUT",
        f"/consents/{_seg(phone)}",
        lambda d: Consent.from_json(_obj(d) or {"phone": phone}),
        body,
    )


def consent_get(phone: str) -> Call[Consent]:
    return Call("GET", f"/consents/{_seg(phone)}", lambda d: Consent.from_json(_obj(d)))


def consent_delete(phone: str) -> Call[None]:
    return Call("DELETE", f"/consents/{_seg(phone)}", _none)


def suppression_list() -> Call[list[Suppression]]:
    return Call(
        "GET",
        "/suppressions",
        lambda d: [Suppression.from_json(i) for i in _items(d, "suppressions")],
    )


def suppression_delete(phone: str) -> Call[None]:
    return Call("DELETE", f"/suppressions/{_seg(phone)}", _none)


def privacy_export(phone: str) -> Call[dict[str, Any]]:
    return Call("GET", "/privacy/export", _dict, params={"phone": phone})


def privacy_erase(phone: str) -> Call[dict[str, Any]]:
    return Call("POST", "/privacy/erase", _dict, {"phone": phone})
