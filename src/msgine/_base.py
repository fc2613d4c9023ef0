"""What the sync and async clients share: building requests and turning responses into results.

The server's answer is untrusted input (a misconfigured base URL, a proxy, a hostile host):
bodies are read up to a cap, anything that does not parse becomes an ``MsGineError``, and the
text an error carries (code, message, request id) is bounded and stripped of control characters
before it can reach the caller's logs.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Iterator, Mapping
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

#: The most of a successful answer the SDK reads (the largest real one, a page of 100 messages,
#: is a few hundred KiB); more is an ``MsGineError`` ``response_too_large``.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
#: The most of an error answer read; the rest is dropped (an error body is small).
MAX_ERROR_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 500
_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_DROPPED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class _TooLarge(Exception):
    pass


def _capped(chunks: Iterator[bytes], limit: int, *, truncate: bool) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            if truncate:
                return bytes(body[:limit])
            raise _TooLarge
    return bytes(body)


async def _acapped(chunks: AsyncIterator[bytes], limit: int, *, truncate: bool) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            if truncate:
                return bytes(body[:limit])
            raise _TooLarge
    return bytes(body)


def _rebuilt(response: httpx.Response, content: bytes) -> httpx.Response:
    """The response with its (already decoded, capped) body in memory."""
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DROPPED]
    return httpx.Response(
        response.status_code, headers=headers, content=content, request=response.request
    )


def _too_large(response: httpx.Response) -> MsGineError:
    return MsGineError(
        response.status_code,
        "response_too_large",
        f"the server's answer is larger than {MAX_RESPONSE_BYTES} bytes",
        request_id=_clean_request_id(response.headers.get("X-Request-Id")),
    )


def send(http: httpx.Client, request: httpx.Request, auth: httpx.Auth) -> httpx.Response:
    """Send and read the answer, at most ``MAX_RESPONSE_BYTES`` of it (``MAX_ERROR_BYTES`` of
    an error); a larger success is an ``MsGineError``, never a whole body in memory."""
    response = http.send(request, auth=auth, stream=True)
    try:
        limit, truncate = _limit(response)
        try:
            content = _capped(response.iter_bytes(), limit, truncate=truncate)
        except _TooLarge:
            raise _too_large(response) from None
    finally:
        response.close()
    return _rebuilt(response, content)


async def asend(
    http: httpx.AsyncClient, request: httpx.Request, auth: httpx.Auth
) -> httpx.Response:
    """``send`` for the async client."""
    response = await http.send(request, auth=auth, stream=True)
    try:
        limit, truncate = _limit(response)
        try:
            content = await _acapped(response.aiter_bytes(), limit, truncate=truncate)
        except _TooLarge:
            raise _too_large(response) from None
    finally:
        await response.aclose()
    return _rebuilt(response, content)


def _limit(response: httpx.Response) -> tuple[int, bool]:
    if response.is_success:
        return MAX_RESPONSE_BYTES, False
    return MAX_ERROR_BYTES, True


def clean_text(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, control and format characters dropped: safe to
    print and log whatever the server sent."""
    kept = "".join(
        " " if ch in "\t\r\n" else ch
        for ch in value[: limit * 2]
        if ch in "\t\r\n" or unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}
    )
    return kept[:limit]


def _clean_request_id(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value if _CODE.fullmatch(value) else None


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
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
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
                request_id=_clean_request_id(response.headers.get("X-Request-Id")),
            )
        try:
            return call.parse(data)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError):
            raise MsGineError(
                response.status_code,
                "invalid_response",
                "the server's answer does not have the expected shape",
                request_id=_clean_request_id(response.headers.get("X-Request-Id")),
            ) from None
    raise error_from_response(response)


def error_from_response(response: httpx.Response) -> MsGineError:
    body = _json(response)
    envelope: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    error = envelope.get("error")
    error = error if isinstance(error, Mapping) else {}
    meta = envelope.get("meta")
    meta = meta if isinstance(meta, Mapping) else {}
    status = response.status_code
    raw_code = error.get("code")
    code = raw_code if isinstance(raw_code, str) and _CODE.fullmatch(raw_code) else "http_error"
    message = error.get("message")
    message = clean_text(message, MAX_MESSAGE_CHARS) if isinstance(message, str) else ""
    if not message:
        message = f"HTTP {status} {clean_text(response.reason_phrase, 64)}".strip()
    details = error.get("details") if isinstance(error.get("details"), Mapping) else None
    request_id = _clean_request_id(meta.get("requestId")) or _clean_request_id(
        response.headers.get("X-Request-Id")
    )
    cls = error_class_for(status)
    if cls is MsGineRateLimitError:
        retry_after = parse_retry_after(response)
        body_value = error.get("retryAfter")
        if (
            retry_after is None
            and isinstance(body_value, int | float)
            and not isinstance(body_value, bool)
            and 0 <= body_value < 1e9  # also refuses NaN and Infinity, which json.loads accepts
        ):
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
