"""When to retry and how long to wait: exponential backoff, full jitter, Retry-After honoured.

Retries are only ever made when repeating the request cannot cause a second effect: idempotent
methods, POSTs carrying an ``Idempotency-Key``, and any request whose connection was never
established.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

RETRYABLE_STATUS = frozenset({408, 429})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_retries`` extra attempts; waits of ``uniform(0, min(cap, base * 2**n))`` seconds.

    A ``Retry-After`` longer than ``max_retry_after`` is not waited out: the error is raised at
    once (with ``retry_after`` set on rate-limit errors) so the caller decides.
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, retry_index: int) -> float:
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**retry_index))

    def delay(self, retry_index: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry number ``retry_index`` (0-based), or None to give up."""
        if retry_index >= self.max_retries:
            return None
        retry_after = parse_retry_after(response) if response is not None else None
        if retry_after is None:
            return self.backoff(retry_index)
        if retry_after > self.max_retry_after:
            return None
        return retry_after


def is_retryable_status(status_code: int) -> bool:
    return status_code in RETRYABLE_STATUS or (status_code >= 500 and status_code != 501)


def is_replay_safe(request: httpx.Request) -> bool:
    return request.method in IDEMPOTENT_METHODS or IDEMPOTENCY_HEADER in request.headers


def never_reached_server(exc: httpx.TransportError) -> bool:
    """Connection failures before any byte was sent are safe to retry for every method."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


def parse_retry_after(response: httpx.Response, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header given as delta-seconds or an HTTP date."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)
