"""The outcome of a rate-limit check, ready to render as HTTP headers or a 429."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from msgine.server.errors import RateLimitRefusal


@dataclass(slots=True)
class RateDecision:
    """Whether a request may pass, described by its tightest limit. Read-only by convention:
    not frozen, as a frozen dataclass costs a microsecond more to build on every check.

    `reset_at` is a Unix time; headers render it as whole Unix seconds (rounded up), the
    convention of GitHub's and most gateways' `X-RateLimit-Reset`. `reason` is "lockout" for
    an address locked out after failed authentications: no limit to describe, only a wait.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_at: float
    retry_after: int
    reason: Literal["limit", "lockout"] = "limit"

    def headers(self) -> dict[str, str]:
        """`X-RateLimit-*` headers, plus `Retry-After` (seconds) when refused."""
        if self.reason == "lockout":
            return {"Retry-After": str(self.retry_after)}
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers

    def error(self) -> RateLimitRefusal:
        """The domain error the API renders as 429, with these headers, for a refusal."""
        if self.reason == "lockout":
            message = "Too many failed authentications from this address"
            details: dict[str, object] = {"reason": "lockout"}
        else:
            message = "Rate limit exceeded"
            details = {"limit": self.limit, "reset": math.ceil(self.reset_at)}
        return RateLimitRefusal(
            f"{message}; retry in {self.retry_after} s.",
            retry_after=self.retry_after,
            headers=self.headers(),
            details=details,
        )


def seconds_until(reset_at: float, now: float) -> int:
    """Whole seconds to wait for `reset_at`, never less than 1 (a client must back off)."""
    return max(1, math.ceil(reset_at - now))


def combine(decisions: list[RateDecision]) -> RateDecision:
    """One decision for several checks: refused if any is; else the one with least room."""
    if not decisions:
        raise ValueError("combine() needs at least one decision")
    refused = [d for d in decisions if not d.allowed]
    if refused:
        return max(refused, key=lambda d: d.retry_after)
    return min(decisions, key=lambda d: (d.remaining, d.reset_at))
