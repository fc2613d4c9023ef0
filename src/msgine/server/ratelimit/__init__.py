"""Rate limits per key, account, client address and recipient; lock-outs; geo permissions.

Counts live in Redis when MSGINE_REDIS_URL is set (shared by every process) and in memory
otherwise; see docs/rate-limits.md for the defaults and the behaviour while Redis is down.
"""

from msgine.server.ratelimit._address import UNKNOWN_ADDRESS

from ._address import address_bucket, client_address
from ._decision import RateDecision, combine
from ._geo import GeoPolicy
from ._identity import opaque_identity
from ._limiter import IP_NAMESPACE, RateLimiter
from ._parse import exceeded_windows, parse_limits
from ._policy import (
    DEFAULT_PER_ACCOUNT,
    DEFAULT_PER_ADDRESS,
    DEFAULT_PER_KEY,
    DEFAULT_PER_RECIPIENT,
    DESTINATION_NOT_ALLOWED,
    RECIPIENT_RATE_LIMITED,
    RateLimitPolicy,
)

__all__ = [
    "DEFAULT_PER_ACCOUNT",
    "DEFAULT_PER_ADDRESS",
    "DEFAULT_PER_KEY",
    "DEFAULT_PER_RECIPIENT",
    "DESTINATION_NOT_ALLOWED",
    "IP_NAMESPACE",
    "RECIPIENT_RATE_LIMITED",
    "UNKNOWN_ADDRESS",
    "GeoPolicy",
    "RateDecision",
    "RateLimitPolicy",
    "RateLimiter",
    "address_bucket",
    "client_address",
    "combine",
    "exceeded_windows",
    "opaque_identity",
    "parse_limits",
]
