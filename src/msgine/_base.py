"""What the sync and async clients share: building requests and turning responses into results."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx

from ._calls import Call
from ._errors import (
    MsGineConnectionError,
    MsGineError,
    MsGineRateLimitError,
    MsGineTimeoutError,
    error_class_for,
)
from ._retry import IDEMPOTENCY_HEADER, parse_retry_after

T = TypeVar("T")

# Records carry method, status, attempt and request id only: never URLs (they can hold phone
# numbers), bodies or headers.
logger = logging.getLogger("msgine")

__version__ = "0.1.0"
USER_AGENT = f"msgine-python/{__version__}"


def build_request(
    http: httpx.Client | httpx.AsyncClient, base_url: str, call: Call[T]
) -> httpx.Request:
    headers = {"Accept": "application/json"}
    if call.idempotency_key is not None:
        headers[IDEMPOTENCY_HEADER] = call.idempotency_key
    return http.build_request(
        call.method,
        base_url + call.path,
        json=dict(call.json) if call.json is not None else None,
        params=dict(call.params) if call.params is not None else None,
        headers=headers,
    )


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def parse_response(call: Call[T], response: httpx.Response) -> T:
    """The parsed result of a 2xx response; raises the mapped ``MsGineError`` otherwise."""
    if response.is_success:
        data = _json(response)
        if data is None and response.content:
            raise MsGineError(
                response.status_code,
                "invalid_response",
                "the server answered with a body that is not JSON",
                request_id=response.headers.get("X-Request-Id"),
            )
        return call.parse(data)
    raise error_from_response(response)


def error_from_response(response: httpx.Response) -> MsGineError:
    body = _json(response)
    envelope: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    error = envelope.get("error")
    error = error if isinstance(error, Mapping) else {}
    meta = envelope.get("meta")
    meta = meta if isinstance(meta, Mapping) else {}
    status = response.status_code
    code = error.get("code") if isinstance(error.get("code"), str) else "http_error"
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = f"HTTP {status} {response.reason_phrase}".strip()
    details = error.get("details") if isinstance(error.get("details"), Mapping) else None
    request_id = meta.get("requestId") or response.headers.get("X-Request-Id")
    request_id = request_id if isinstance(request_id, str) else None
    cls = error_class_for(status)
    if cls is MsGineRateLimitError:
        retry_after = parse_retry_after(response)
        body_value = error.get("retryAfter")
        if retry_after is None and isinstance(body_value, int | float):
            retry_after = float(body_value)
        return MsGineRateLimitError(status, str(code), message, details, request_id, retry_after)
    return cls(status, str(code), message, details, request_id)


def error_from_transport(exc: httpx.TransportError) -> MsGineConnectionError:
    # The httpx message may name the host; it never holds headers, so it is safe to keep the type.
    if isinstance(exc, httpx.TimeoutException):
        return MsGineTimeoutError(None, "timeout", f"request timed out ({type(exc).__name__})")
    return MsGineConnectionError(
        None, "connection_error", f"connection failed ({type(exc).__name__})"
    )


def log_retry(request: httpx.Request, retry_number: int, delay: float, reason: str) -> None:
    logger.info(
        "retry %d of %s request in %.2fs after %s",
        retry_number,
        request.method,
        delay,
        reason,
        extra={
            "msgine_retry": retry_number,
            "msgine_method": request.method,
            "msgine_reason": reason,
        },
    )
