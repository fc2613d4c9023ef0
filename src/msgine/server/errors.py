"""Domain errors: each carries the contract's error code and HTTP status.

Domain code raises these; the API renders them in the contract's error format and the CLI prints
their message. Messages and details never contain secrets or personal data (phone numbers, text).
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidRequest(DomainError):
    code = "invalid_request"


class InvalidPhoneNumber(DomainError):
    code = "invalid_phone_number"


class MessageEmpty(DomainError):
    code = "message_empty"


class MessageTooLong(DomainError):
    code = "message_too_long"


class InvalidSenderId(DomainError):
    code = "invalid_sender_id"


class InsecureCallbackUrl(DomainError):
    code = "insecure_callback_url"


class Unauthorized(DomainError):
    code = "unauthorized"
    status = 401


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    status = 409


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status = 413


class RateLimitExceeded(DomainError):
    code = "rate_limit_exceeded"
    status = 429

    def __init__(
        self, message: str, *, retry_after: int, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class RecipientOptedOut(DomainError):
    code = "recipient_opted_out"


class ConsentRequired(DomainError):
    code = "consent_required"


class QuietHours(DomainError):
    code = "quiet_hours"


class RateLimitRefusal(RateLimitExceeded):
    """A 429 that also carries its limit's headers (`X-RateLimit-*`, `Retry-After`); the API's
    handler adds `headers` to the response."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        headers: dict[str, str],
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, details=details)
        self.headers = headers
