"""SDK exceptions: one base class carrying the gateway's error envelope, one subclass per status.

Messages come from the gateway's error body or from fixed SDK text; neither ever contains the API
key, a phone number or message text, so exceptions are safe to log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class MsGineError(Exception):
    """Base class of every SDK error; ``status_code`` is None when no HTTP response was received."""

    def __init__(
        self,
        status_code: int | None,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [f"code={self.code}"]
        if self.status_code is not None:
            parts.append(f"status={self.status_code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return f"{self.message} ({', '.join(parts)})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class MsGineValidationError(MsGineError):
    """Raised before any request when arguments cannot be valid (bad number, empty message...)."""

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(None, code, message, details)


class MsGineConfigurationError(MsGineError):
    """The client cannot be built safely: missing or malformed key, plain-http remote URL."""

    def __init__(self, message: str) -> None:
        super().__init__(None, "configuration_error", message)


class MsGineConnectionError(MsGineError):
    """No usable HTTP response: connection refused or reset, DNS or TLS failure."""


class MsGineTimeoutError(MsGineConnectionError):
    """The request timed out."""


class MsGineAPIStatusError(MsGineError):
    """The gateway answered with an error status."""


class MsGineBadRequestError(MsGineAPIStatusError):
    """400/413/422: the gateway rejected the request's content."""


class MsGineAuthenticationError(MsGineAPIStatusError):
    """401: missing, unknown, revoked or expired API key."""


class MsGinePermissionError(MsGineAPIStatusError):
    """403: the key lacks a scope or the caller's address is outside its allow-list."""


class MsGineNotFoundError(MsGineAPIStatusError):
    """404: no such resource in this account."""


class MsGineConflictError(MsGineAPIStatusError):
    """409: for example an idempotency key reused with a different body."""


class MsGineRateLimitError(MsGineAPIStatusError):
    """429: ``retry_after`` is the number of seconds the gateway asked to wait, when given."""

    def __init__(
        self,
        status_code: int | None,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status_code, code, message, details, request_id)
        self.retry_after = retry_after


class MsGineServerError(MsGineAPIStatusError):
    """5xx: the gateway failed; sends are safe to retry with the same idempotency key."""


_BY_STATUS: dict[int, type[MsGineAPIStatusError]] = {
    400: MsGineBadRequestError,
    401: MsGineAuthenticationError,
    403: MsGinePermissionError,
    404: MsGineNotFoundError,
    409: MsGineConflictError,
    413: MsGineBadRequestError,
    422: MsGineBadRequestError,
}


def error_class_for(status_code: int) -> type[MsGineAPIStatusError]:
    """The exception class the SDK raises for an HTTP error status."""
    if status_code == 429:
        return MsGineRateLimitError
    if status_code >= 500:
        return MsGineServerError
    return _BY_STATUS.get(status_code, MsGineAPIStatusError)
