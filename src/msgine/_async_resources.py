"""Async resource objects (``client.sms``, ``client.webhooks``...).

Kept in step with ``_resources``; each method only builds a ``Call`` (see ``_calls``) and
hands it to the client, which owns transport, retries and error mapping.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Sequence
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


class AsyncExecutor(Protocol):
    def __call__(self, call: Call[T], /) -> Awaitable[T]: ...


class _AsyncResource:
    __slots__ = ("_execute",)

    def __init__(self, execute: AsyncExecutor) -> None:
        self._execute = execute


class AsyncSms(_AsyncResource):
    """SMS sending and history, with the official SDK's names."""

    async def send(
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
        return await self._execute(
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

    async def history(self, page: int = 1, limit: int = 20) -> MessagePage:
        return await self._execute(_calls.history(page, limit))


class AsyncMessages(_AsyncResource):
    """Reading sent messages and their per-recipient statuses."""

    async def get(self, id: str) -> Message:
        return await self._execute(_calls.get_message(id))

    async def list(self, page: int = 1, limit: int = 20, status: str | None = None) -> MessagePage:
        return await self._execute(_calls.history(page, limit, status))


class AsyncWebhooks(_AsyncResource):
    """Webhook endpoints registered with the gateway."""

    async def create(
        self, url: str, events: Sequence[str] | None = None, description: str | None = None
    ) -> WebhookEndpoint:
        return await self._execute(_calls.webhook_create(url, events, description))

    async def list(self) -> builtins.list[WebhookEndpoint]:
        return await self._execute(_calls.webhook_list())

    async def get(self, id: str) -> WebhookEndpoint:
        return await self._execute(_calls.webhook_get(id))

    async def update(
        self,
        id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint:
        return await self._execute(
            _calls.webhook_update(id, url=url, events=events, description=description)
        )

    async def delete(self, id: str) -> None:
        return await self._execute(_calls.webhook_delete(id))

    async def rotate_secret(self, id: str, grace_hours: float | None = None) -> WebhookSecret:
        return await self._execute(_calls.webhook_rotate_secret(id, grace_hours))

    async def deliveries(self, id: str) -> builtins.list[WebhookDelivery]:
        return await self._execute(_calls.webhook_deliveries(id))

    async def replay(self, id: str, delivery_id: str) -> WebhookDelivery:
        return await self._execute(_calls.webhook_replay(id, delivery_id))


class AsyncKeys(_AsyncResource):
    """API keys of the account (scope keys:manage)."""

    async def create(
        self,
        *,
        name: str | None = None,
        mode: str | None = None,
        scopes: Sequence[str] | None = None,
        allowed_ips: Sequence[str] | None = None,
        expires_in_days: int | None = None,
        rate_limit: str | None = None,
    ) -> ApiKey:
        return await self._execute(
            _calls.key_create(
                name=name,
                mode=mode,
                scopes=scopes,
                allowed_ips=allowed_ips,
                expires_in_days=expires_in_days,
                rate_limit=rate_limit,
            )
        )

    async def list(self) -> builtins.list[ApiKey]:
        return await self._execute(_calls.key_list())

    async def rotate(self, id: str, grace_hours: float | None = None) -> ApiKey:
        return await self._execute(_calls.key_rotate(id, grace_hours))

    async def revoke(self, id: str) -> ApiKey:
        return await self._execute(_calls.key_revoke(id))

    async def compromise(self, id: str) -> ApiKey:
        return await self._execute(_calls.key_compromise(id))


class AsyncConsents(_AsyncResource):
    """Marketing consent records per phone number."""

    async def put(
        self, phone: str, purpose: str, source: str, evidence: str | None = None
    ) -> Consent:
        return await self._execute(_calls.consent_put(phone, purpose, source, evidence))

    async def get(self, phone: str) -> Consent:
        return await self._execute(_calls.consent_get(phone))

    async def delete(self, phone: str) -> None:
        return await self._execute(_calls.consent_delete(phone))


class AsyncSuppressions(_AsyncResource):
    """Numbers that opted out (STOP) and will not be sent to."""

    async def list(self) -> builtins.list[Suppression]:
        return await self._execute(_calls.suppression_list())

    async def delete(self, phone: str) -> None:
        return await self._execute(_calls.suppression_delete(phone))


class AsyncPrivacy(_AsyncResource):
    """Data-subject requests: export and erasure of one number's data."""

    async def export(self, phone: str) -> dict[str, Any]:
        return await self._execute(_calls.privacy_export(phone))

    async def erase(self, phone: str) -> dict[str, Any]:
        return await self._execute(_calls.privacy_erase(phone))


class AsyncAccount(_AsyncResource):
    """Account-wide settings."""

    async def rotate_webhook_secret(self) -> WebhookSecret:
        """Rotate the secret that signs per-message callbackUrl deliveries; returned once."""
        return await self._execute(_calls.account_rotate_webhook_secret())


class AsyncAnalytics(_AsyncResource):
    """Message analytics of the key's account and mode, per UTC day (scope messages:read)."""

    async def overview(
        self, from_: date | datetime | str | None = None, to: date | datetime | str | None = None
    ) -> AnalyticsOverview:
        """Totals from ``from_`` to ``to`` (both included; default: the last 30 days)."""
        return await self._execute(_calls.analytics_overview(from_, to))

    async def daily(self, days: int = 30) -> AnalyticsDaily:
        """Each of the last ``days`` days (1-90), today included, oldest first."""
        return await self._execute(_calls.analytics_daily(days))
