"""MsGine's default limits (the same as the gateway settings' defaults), and overrides."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from ._geo import GeoPolicy
from ._parse import parse_limits

DEFAULT_PER_KEY = "100/minute;20/second"
DEFAULT_PER_ACCOUNT = "1000/minute"
DEFAULT_PER_ADDRESS = "300/minute"
DEFAULT_PER_RECIPIENT = "10/hour"

# Error code of a recipient refused for its own limit; the other recipients still go out.
RECIPIENT_RATE_LIMITED = "recipient_rate_limited"
# Error code of a recipient in a country the account may not send to.
DESTINATION_NOT_ALLOWED = "destination_not_allowed"


@dataclass(frozen=True)
class RateLimitPolicy:
    """The limits that apply to one account's traffic; every string is validated on creation.

    `per_address` applies to every request from a client address before authentication;
    `daily_cap` (messages per account per day) is off when None.
    """

    per_key: str = DEFAULT_PER_KEY
    per_account: str = DEFAULT_PER_ACCOUNT
    per_address: str = DEFAULT_PER_ADDRESS
    per_recipient: str = DEFAULT_PER_RECIPIENT
    daily_cap: int | None = None
    geo: GeoPolicy = field(default_factory=GeoPolicy)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                parse_limits(value)
        if self.daily_cap is not None and self.daily_cap < 1:
            raise ValueError("daily_cap must be at least 1, or None for no cap")

    @property
    def daily(self) -> str | None:
        """The daily cap in `limits` notation, for the "daily" namespace."""
        return None if self.daily_cap is None else f"{self.daily_cap}/day"

    def with_overrides(self, **overrides: object) -> RateLimitPolicy:
        """This policy with an account's own settings (unset ones, None, keep the default)."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **changes)  # type: ignore[arg-type]
