"""Sync resource objects (``client.sms``, ``client.webhooks``...).

Kept in step with ``_async_resources``; each method only builds a ``Call`` (see ``_calls``) and
hands it to the client, which owns transport, retries and error mapping.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

from . import _calls
from ._calls import Call
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


class Executor(Protocol):
    def __call__(self, call: Call[T], /) -> T: ...


class _Resource:
    __slots__ = ("_execute",)

    def __init__(self, execute: Executor) -> None:
        self._execute = execute


class Sms(_Resource):
    """SMS sending and history, with the official SDK's names."""

    def send(
        self,
        to: str | Sequence[str],
        message: str,
        from_: str | None = None,
        scheduled_for: datetime | str | None = None,
        idempotency_key: str | None = None,
        *,
        callback_url: str | None = None,
        type: MessageType | None = None,
    ) -> Message:
        """Send one SMS to one or more recipients; retried safely under one idempotency key."""
        return self._execute(
            _calls.send_sms(
                to,
                message,
                from_=from_,
                scheduled_for=scheduled_for,
                idempotency_key=idempotency_key,
                callback_url=callback_url,
                type=type,
            )
        )

    def history(self, page: int = 1, limit: int = 20) -> MessagePage:
        return self._execute(_calls.history(page, limit))


class Messages(_Resource):
    """Reading sent messages and their per-recipient statuses."""

    def get(self, id: str) -> Message:
        return self._execute(_calls.get_message(id))

    def list(self, page: int = 1, limit: int = 20, status: str | None = None) -> MessagePage:
        return self._execute(_calls.history(page, limit, status))


class Webhooks(_Resource):
    """Webhook endpoints registered with the gateway."""

    def create(
        self, url: str, events: Sequence[str] | None = None, description: str | None = None
    ) -> WebhookEndpoint:
        return self._execute(_calls.webhook_create(url, events, description))

    def list(self) -> builtins.list[WebhookEndpoint]:
        return self._execute(_calls.webhook_list())

    def get(self, id: str) -> WebhookEndpoint:
        return self._execute(_calls.webhook_get(id))

    def update(
        self,
        id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint:
        return self._execute(
            _calls.webhook_update(id, url=url, events=events, description=description)
        )

    def delete(self, id: str) -> None:
        return self._execute(_calls.webhook_delete(id))

    def rotate_secret(self, id: str, grace_hours: float | None = None) -> WebhookSecret:
        return self._execute(_calls.webhook_rotate_secret(id, grace_hours))

    def deliveries(self, id: str) -> builtins.list[WebhookDelivery]:
        return self._execute(_calls.webhook_deliveries(id))

    def replay(self, id: str, delivery_id: str) -> WebhookDelivery:
        return self._execute(_calls.webhook_replay(id, delivery_id))


class Keys(_Resource):
    """API keys of the account (scope keys:manage)."""

    def create(
        self,
        *,
        name: str | None = None,
        mode: str | None = None,
        scopes: Sequence[str] | None = None,
        allowed_ips: Sequence[str] | None = None,
        expires_in_days: int | None = None,
        rate_limit: str | None = None,
    ) -> ApiKey:
        return self._execute(
            _calls.key_create(
                name=name,
                mode=mode,
                scopes=scopes,
                allowed_ips=allowed_ips,
                expires_in_days=expires_in_days,
                rate_limit=rate_limit,
            )
        )

    def list(self) -> builtins.list[ApiKey]:
        return self._execute(_calls.key_list())

    def rotate(self, id: str, grace_hours: float | None = None) -> ApiKey:
        return self._execute(_calls.key_rotate(id, grace_hours))

    def revoke(self, id: str) -> ApiKey:
        return self._execute(_calls.key_revoke(id))

    def compromise(self, id: str) -> ApiKey:
        return self._execute(_calls.key_compromise(id))


class Consents(_Resource):
    """Marketing consent records per phone number."""

    def put(self, phone: str, purpose: str, source: str, evidence: str | None = None) -> Consent:
        return self._execute(_calls.consent_put(phone, purpose, source, evidence))

    def get(self, phone: str) -> Consent:
        return self._execute(_calls.consent_get(phone))

    def delete(self, phone: str) -> None:
        return self._execute(_calls.consent_delete(phone))


class Suppressions(_Resource):
    """Numbers that opted out (STOP) and will not be sent to."""

    def list(self) -> builtins.list[Suppression]:
        return self._execute(_calls.suppression_list())

    def delete(self, phone: str) -> None:
        return self._execute(_calls.suppression_delete(phone))


class Privacy(_Resource):
    """Data-subject requests: export and erasure of one number's data."""

    def export(self, phone: str) -> dict[str, Any]:
        return self._execute(_calls.privacy_export(phone))

    def erase(self, phone: str) -> dict[str, Any]:
        return self._execute(_calls.privacy_erase(phone))


class Account(_Resource):
    """Account-wide settings."""

    def rotate_webhook_secret(self) -> WebhookSecret:
        """Rotate the secret that signs per-message callbackUrl deliveries; returned once."""
        return self._execute(_calls.account_rotate_webhook_secret())


class Analytics(_Resource):
    """Message analytics of the key's account and mode, per UTC day (scope messages:read)."""

    def overview(
        self, from_: date | datetime | str | None = None, to: date | datetime | str | None = None
    ) -> AnalyticsOverview:
        """Totals from ``from_`` to ``to`` (both included; default: the last 30 days)."""
        return self._execute(_calls.analytics_overview(from_, to))

    def daily(self, days: int = 30) -> AnalyticsDaily:
        """Each of the last ``days`` days (1-90), today included, oldest first."""
        return self._execute(_calls.analytics_daily(days))
