"""Light client-side checks that fail fast, before a request (and a retry budget) is spent.

The gateway validates fully (real numbering plans, sanitising, segments); these only catch what
can never be valid. Error texts name the field and position, never the rejected value, because
the value may be a phone number or message text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from ._errors import MsGineValidationError

E164 = re.compile(r"\+[1-9]\d{6,14}")
_ALPHA_SENDER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ]{0,9}[A-Za-z0-9])?")
MAX_MESSAGE_LENGTH = 1000
MESSAGE_TYPES = ("transactional", "marketing")


def recipients(to: str | Sequence[str]) -> list[str]:
    """Split a comma-separated string or a list into E.164 numbers, refusing any other shape."""
    items = to.split(",") if isinstance(to, str) else list(to)
    numbers: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise MsGineValidationError(
                "invalid_phone_number", f"recipient {index + 1} is not a string", {"index": index}
            )
        number = item.strip()
        if not E164.fullmatch(number):
            raise MsGineValidationError(
                "invalid_phone_number",
                f"recipient {index + 1} is not an E.164 number (+ and 7-15 digits)",
                {"index": index},
            )
        numbers.append(number)
    if not numbers:
        raise MsGineValidationError("invalid_phone_number", "at least one recipient is required")
    return numbers


def message(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise MsGineValidationError("message_empty", "message must not be empty")
    length = len(text.strip())
    if length > MAX_MESSAGE_LENGTH:
        raise MsGineValidationError(
            "message_too_long",
            f"message has {length} characters; at most {MAX_MESSAGE_LENGTH} are allowed",
            {"length": length, "max": MAX_MESSAGE_LENGTH},
        )
    return text


def sender_id(value: str) -> str:
    """Up to 11 ASCII letters, digits or inner spaces with at least one letter, or E.164."""
    ok = isinstance(value, str) and (
        E164.fullmatch(value) is not None
        or (
            _ALPHA_SENDER.fullmatch(value) is not None
            and any(char.isascii() and char.isalpha() for char in value)
        )
    )
    if not ok:
        raise MsGineValidationError(
            "invalid_sender_id",
            "from_ must be 1-11 letters, digits or inner spaces with at least one letter, "
            "or an E.164 number",
        )
    return value


def callback_url(url: str) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "https" or not parts.hostname:
        raise MsGineValidationError("insecure_callback_url", "callback_url must be an https URL")
    return url


def scheduled_for(value: datetime | str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise MsGineValidationError(
                "invalid_request", "scheduled_for must be timezone-aware (for example UTC)"
            )
        return value.isoformat()
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise MsGineValidationError(
                "invalid_request", "scheduled_for must be an ISO 8601 date-time"
            ) from None
        return value
    raise MsGineValidationError("invalid_request", "scheduled_for must be a datetime or string")


def message_type(value: str) -> str:
    if value not in MESSAGE_TYPES:
        raise MsGineValidationError(
            "invalid_request", "type must be 'transactional' or 'marketing'"
        )
    return value


def page_limit(page: int, limit: int) -> None:
    if not isinstance(page, int) or page < 1:
        raise MsGineValidationError("invalid_request", "page must be an integer >= 1")
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise MsGineValidationError("invalid_request", "limit must be an integer from 1 to 100")


def analytics_days(days: int) -> int:
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 90:
        raise MsGineValidationError("invalid_request", "days must be an integer from 1 to 90")
    return days


def idempotency_key(value: str) -> str:
    if (
        not isinstance(value, str)
        or not (value.isascii() and value.isprintable())
        or len(value) > 255
    ):
        raise MsGineValidationError(
            "invalid_request", "idempotency_key must be 1-255 printable ASCII characters"
        )
    return value
