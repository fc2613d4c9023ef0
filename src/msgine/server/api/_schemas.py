"""What every route answers, as models for the OpenAPI document.

The routes render plain dicts built by the domain's views (the send path for speed, the others
for one code path); these models describe those dicts exactly, field by field, so clients and
generators get typed bodies. They document, they do not filter: a test runs schemathesis against
the real server and fails when an answer does not match its model
(tests/security/test_api09_inventory.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from msgine.server.accounts import AccountPolicy

__all__ = ["AccountPolicy"]  # re-exported: the policy routes answer with it

Status = Literal["pending", "scheduled", "queued", "sent", "delivered", "failed", "rejected"]
Scope = Literal[
    "messages:send",
    "messages:read",
    "webhooks:manage",
    "keys:manage",
    "compliance:manage",
    "audit:read",
]


# --- errors -------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable code, e.g. invalid_request, not_found")
    message: str
    details: dict[str, Any]
    retryAfter: int | None = Field(default=None, description="Seconds, on 429 only")


class ErrorMeta(BaseModel):
    requestId: str


class ErrorBody(BaseModel):
    """Every error the API returns."""

    error: ErrorDetail
    meta: ErrorMeta


# --- messages -----------------------------------------------------------------------------


class RecipientView(BaseModel):
    to: str | None = Field(description="E.164; null once erased")
    status: Status
    errorCode: str | None = None
    carrierMessageId: str | None = None
    updatedAt: datetime | None


class MessageView(BaseModel):
    id: str = Field(pattern=r"^msg_")
    sid: str
    channel: Literal["sms"]
    type: Literal["transactional", "marketing"]
    to: list[str | None]
    from_: str = Field(alias="from", description="The sender ID; empty when none was given")
    content: str | None = Field(description="null once purged or erased")
    status: Status
    cost: int
    currency: str
    segments: int
    encoding: Literal["GSM-7", "UCS-2"]
    scheduledFor: datetime | None
    scheduledAt: datetime | None = Field(description="The same as scheduledFor (MsGine's name)")
    sentAt: datetime | None = Field(
        description="When a carrier first accepted one of its recipients; null before"
    )
    callbackUrl: str | None
    createdAt: datetime
    updatedAt: datetime
    recipients: list[RecipientView]


class MessagePage(BaseModel):
    messages: list[MessageView]
    total: int
    page: int
    pages: int


# --- keys ---------------------------------------------------------------------------------


class KeyView(BaseModel):
    """A key as listings show it: never the key or its hash."""

    id: str
    account: str
    name: str
    mode: Literal["test", "live"]
    redactedKey: str
    scopes: list[Scope]
    allowedIps: list[str]
    rateLimit: str | None
    status: str
    createdAt: datetime
    expiresAt: datetime | None
    revokedAt: datetime | None
    lastUsedAt: datetime | None
    rotatedFrom: str | None
    replacedBy: str | None
    ageDays: int
    rotationDue: bool


class NewKeyView(KeyView):
    key: str = Field(description="The key itself: in this response and nowhere else")


class KeyList(BaseModel):
    keys: list[KeyView]


class AddressRequests(BaseModel):
    sourceIp: str
    requests: int


class HourRequests(AddressRequests):
    hour: str | None


class KeyUsageReport(BaseModel):
    """A key's recorded usage, the compromise report's shape (docs/incident-runbook.md)."""

    keyId: str
    account: str
    mode: Literal["test", "live"]
    createdAt: str | None
    revokedAt: str | None
    firstUsedAt: str | None
    lastUsedAt: str | None
    totalRequests: int
    requestsByAddress: list[AddressRequests]
    requestsByHour: list[HourRequests]
    refusedAfterRevocation: int = Field(
        description="Requests with the key after it was revoked (refused): someone holds it"
    )
    refusedByAddress: list[AddressRequests]
    messagesSent: int
    firstMessageAt: str | None
    lastMessageAt: str | None


class CompromisedKeyView(NewKeyView):
    compromisedKeyId: str
    report: dict[str, Any] = Field(description="The revoked key's recorded usage")


# --- webhooks -----------------------------------------------------------------------------


class WebhookView(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabledReason: str | None
    previousSecretExpiresAt: datetime | None
    lastSuccessAt: datetime | None
    failingSince: datetime | None
    createdAt: datetime
    updatedAt: datetime


class NewWebhookView(WebhookView):
    secret: str = Field(description="whsec_...: in this response and nowhere else")


class WebhookList(BaseModel):
    webhooks: list[WebhookView]


class SecretView(BaseModel):
    secret: str = Field(description="whsec_...: in this response and nowhere else")
    previousSecretExpiresAt: datetime | None


class RotatedSecretView(SecretView):
    id: str


class AttemptView(BaseModel):
    at: datetime
    statusCode: int | None
    latencyMs: int
    error: str | None
    responseExcerpt: str | None


class DeliveryView(BaseModel):
    id: str
    eventId: str
    event: str | None
    status: Literal["pending", "succeeded", "failed", "cancelled"]
    attempts: int
    nextAttemptAt: datetime | None
    lastStatusCode: int | None
    lastError: str | None
    createdAt: datetime
    completedAt: datetime | None
    attemptLog: list[AttemptView]


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView]


# --- compliance ---------------------------------------------------------------------------


class ConsentView(BaseModel):
    id: str
    purpose: Literal["marketing", "transactional"]
    source: str
    evidence: str | dict[str, Any] | None
    grantedAt: datetime
    withdrawnAt: datetime | None
    withdrawnReason: str | None
    active: bool


class ActiveConsents(BaseModel):
    marketing: bool
    transactional: bool


class ConsentSummary(BaseModel):
    phone: str
    active: ActiveConsents
    consents: list[ConsentView]


class SuppressionView(BaseModel):
    phone: str | None = Field(description="null once erased")
    erased: bool
    reason: str
    source: str
    createdAt: datetime


class SuppressionPage(BaseModel):
    suppressions: list[SuppressionView]
    total: int
    page: int
    limit: int
    pages: int


class SuppressionRemoved(BaseModel):
    phone: str
    suppressed: Literal[False]
    removedAt: datetime


class PrivacyExport(BaseModel):
    phone: str
    exportedAt: datetime
    accountId: str
    messages: list[dict[str, Any]]
    inboundMessages: list[dict[str, Any]]
    consents: list[ConsentView]
    suppression: SuppressionView | None
    events: list[dict[str, Any]]
    webhookDeliveries: list[dict[str, Any]]


class PrivacyErased(BaseModel):
    erased: Literal[True]
    accountId: str
    messages: int
    recipients: int
    inboundMessages: int
    consents: int
    events: int
    webhookDeliveries: int
    suppressionKept: bool


# --- audit, simulator, operations ---------------------------------------------------------


class AuditEntryView(BaseModel):
    seq: int
    id: str
    occurredAt: datetime
    actor: str
    action: str
    target: str | None
    sourceIp: str | None
    requestId: str | None
    outcome: str
    details: dict[str, Any]
    hash: str


class AuditPage(BaseModel):
    entries: list[AuditEntryView]
    nextBefore: int | None = Field(description="Pass as ``before`` for the next page")


class InboundResult(BaseModel):
    """The stored inbound message, and what its keyword (STOP, START, HELP) did."""

    id: str
    receivedAt: datetime


class EgressIps(BaseModel):
    ips: list[str]


class Health(BaseModel):
    status: Literal["ok"]


class CallbackReceived(BaseModel):
    """A carrier callback stored (a provider's own answer format where it asks for one)."""

    received: Literal[True]


class CarrierState(BaseModel):
    """One carrier as its workers last published it (docs/carriers.md)."""

    model_config = ConfigDict(extra="allow")
    state: str


class CarriersReadiness(BaseModel):
    state: Literal["ok", "degraded", "down"]
    carriers: dict[str, CarrierState]
    unservedRoutes: list[str]


class Readiness(BaseModel):
    """``degraded``: a carrier is down while its routes' other carriers serve (or a route has
    none left); the API still accepts and queues. 503 is for the database only: ``error`` when
    it does not answer, ``unwritable`` when it answers but a write fails (disk full, read-only)."""

    status: Literal["ready", "degraded", "unavailable"]
    database: Literal["ok", "error", "unwritable"]
    redis: str | None = None
    carriers: CarriersReadiness | None = None


# --- the account's policy -----------------------------------------------------------------


def policy_changes_schema() -> dict[str, Any]:
    """``PATCH /account/policy``'s body: any of the policy's fields, none required, no others
    (the route validates the merged result against :class:`AccountPolicy` itself)."""
    schema = AccountPolicy.model_json_schema(by_alias=True)
    schema.pop("required", None)
    schema["title"] = "PolicyChanges"
    schema["additionalProperties"] = False
    for field in schema["properties"].values():
        field.pop("default", None)
    return schema


# --- analytics ----------------------------------------------------------------------------


class ChannelCounts(BaseModel):
    """One channel's counts: ``sent`` recipients accepted for sending, of those ``delivered``
    and ``failed`` (docs/analytics.md); ``cost`` in the answer's currency."""

    sent: int
    delivered: int
    failed: int
    cost: int


class AnalyticsTotals(ChannelCounts):
    currency: str = Field(description="ISO 4217; the currency of most of the period's SMS")


class AnalyticsPeriod(BaseModel):
    from_: str = Field(alias="from", description="First UTC day, YYYY-MM-DD")
    to: str = Field(description="Last UTC day (included), YYYY-MM-DD")


class AnalyticsChannels(BaseModel):
    sms: ChannelCounts


class AnalyticsOverview(BaseModel):
    period: AnalyticsPeriod
    totals: AnalyticsTotals
    channels: AnalyticsChannels
    costByCurrency: dict[str, int] = Field(
        description="The period's cost in each currency (one entry unless several were used)"
    )


class AnalyticsDay(BaseModel):
    date: str = Field(description="UTC day, YYYY-MM-DD")
    sms: ChannelCounts
    email: dict[str, int] = Field(description="Always empty: this gateway sends SMS only")
    push: dict[str, int] = Field(description="Always empty: this gateway sends SMS only")


class AnalyticsDaily(BaseModel):
    days: int
    currency: str = Field(description="ISO 4217: the currency of each day's sms.cost")
    data: list[AnalyticsDay] = Field(description="Every day, oldest first, zeros where none")
