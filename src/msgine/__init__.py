"""MsGine: the Python SDK for the MsGine messaging API and self-hosted MsGine gateways.

>>> from msgine import MsGineClient
>>> with MsGineClient() as client:  # doctest: +SKIP
...     client.sms.send("+256701521269", "Hello", from_="MyApp")
"""

from ._base import __version__
from ._client import AsyncMsGineClient, MsGineClient
from ._config import DEFAULT_BASE_URL
from ._errors import (
    MsGineAPIStatusError,
    MsGineAuthenticationError,
    MsGineBadRequestError,
    MsGineConfigurationError,
    MsGineConflictError,
    MsGineConnectionError,
    MsGineError,
    MsGineNotFoundError,
    MsGinePermissionError,
    MsGineRateLimitError,
    MsGineServerError,
    MsGineTimeoutError,
    MsGineValidationError,
)
from ._retry import RetryPolicy
from ._types import (
    AnalyticsDaily,
    AnalyticsOverview,
    ApiKey,
    ChannelStats,
    Consent,
    DailyStats,
    Message,
    MessagePage,
    MessageStatus,
    MessageType,
    Recipient,
    Suppression,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSecret,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "AnalyticsDaily",
    "AnalyticsOverview",
    "ApiKey",
    "AsyncMsGineClient",
    "ChannelStats",
    "Consent",
    "DailyStats",
    "Message",
    "MessagePage",
    "MessageStatus",
    "MessageType",
    "MsGineAPIStatusError",
    "MsGineAuthenticationError",
    "MsGineBadRequestError",
    "MsGineClient",
    "MsGineConfigurationError",
    "MsGineConflictError",
    "MsGineConnectionError",
    "MsGineError",
    "MsGineNotFoundError",
    "MsGinePermissionError",
    "MsGineRateLimitError",
    "MsGineServerError",
    "MsGineTimeoutError",
    "MsGineValidationError",
    "Recipient",
    "RetryPolicy",
    "Suppression",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookSecret",
    "__version__",
]
