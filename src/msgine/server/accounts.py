"""Accounts and their per-account policy (compliance, limits, retention)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from msgine.server._ids import new_id
from msgine.server.errors import InvalidRequest, NotFound
from msgine.server.ratelimit import exceeded_windows, parse_limits
from msgine.server.storage import Direct, accounts, batch_memo

if TYPE_CHECKING:
    from msgine.server.config import Settings

DEFAULT_ACCOUNT_NAME = "default"
# Bounds of what a policy may hold: it is stored as JSON and read on every send.
MAX_COUNTRIES = 250
MAX_DAILY_CAP = 1_000_000_000
MAX_KEYWORDS = 50
Keyword = Annotated[str, Field(min_length=1, max_length=40)]


class AccountPolicy(BaseModel):
    """Per-account settings. Defaults are the strict, safe choice; accounts may loosen them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    organization_name: str = Field(default="MsGine", alias="organizationName", max_length=60)
    timezone: str = "UTC"
    quiet_hours_start: str = Field(default="08:00", alias="quietHoursStart")
    quiet_hours_end: str = Field(default="21:00", alias="quietHoursEnd")
    quiet_hours_policy: Literal["defer", "reject"] = Field(
        default="defer", alias="quietHoursPolicy"
    )
    marketing_requires_consent: StrictBool = Field(default=True, alias="marketingRequiresConsent")
    opt_out_template: str | None = Field(default=None, alias="optOutTemplate", max_length=160)
    help_text: str | None = Field(default=None, alias="helpText", max_length=320)
    retention_days: StrictInt = Field(default=30, ge=1, le=3650, alias="retentionDays")
    allowed_countries: list[str] | None = Field(
        default=None, alias="allowedCountries", max_length=MAX_COUNTRIES
    )
    daily_cap: StrictInt | None = Field(default=None, ge=1, le=MAX_DAILY_CAP, alias="dailyCap")
    # Set by the operator only (``msgine accounts set-daily-cap``): this account's ceiling in
    # place of MSGINE_DAILY_CAP; 0 lifts the cap. ``dailyCap`` may only lower it.
    operator_daily_cap: StrictInt | None = Field(
        default=None, ge=0, le=MAX_DAILY_CAP, alias="operatorDailyCap"
    )
    rate_limit: str | None = Field(default=None, alias="rateLimit")
    recipient_rate_limit: str | None = Field(default=None, alias="recipientRateLimit")
    keywords: dict[str, Annotated[list[Keyword], Field(max_length=MAX_KEYWORDS)]] | None = Field(
        default=None, max_length=3
    )

    @field_validator("rate_limit", "recipient_rate_limit")
    @classmethod
    def _check_limits(cls, value: str | None) -> str | None:
        if value is not None:
            parse_limits(value)  # ValueError says what is wrong
        return value

    @field_validator("allowed_countries")
    @classmethod
    def _check_countries(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        codes = [code.strip().upper() for code in value]
        if any(len(code) != 2 or not code.isalpha() for code in codes):
            raise ValueError("allowedCountries are ISO 3166-1 alpha-2 codes such as 'UG'")
        return codes

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("timezone must be an IANA zone such as 'Africa/Kampala'") from None
        return value

    @field_validator("quiet_hours_start", "quiet_hours_end")
    @classmethod
    def _check_time(cls, value: str) -> str:
        from datetime import time

        try:
            time.fromisoformat(value)
        except ValueError:
            raise ValueError("quiet hours are local times such as '08:00'") from None
        return value


#: Policy fields only the operator sets (the CLI); an API PATCH may not name them.
OPERATOR_FIELDS = frozenset({"operatorDailyCap"})


@dataclass(frozen=True)
class Ceilings:
    """The operator's limits, which an account's own settings may only tighten.

    ``per_account`` and ``per_recipient`` are MSGINE_RATE_LIMIT_PER_ACCOUNT and
    MSGINE_RATE_LIMIT_PER_RECIPIENT; ``default_daily_cap`` is MSGINE_DAILY_CAP (None: no cap), which
    an account's ``operatorDailyCap`` replaces.
    """

    per_account: str
    per_recipient: str
    default_daily_cap: int | None

    @classmethod
    def of(cls, settings: Settings) -> Ceilings:
        return cls(
            per_account=settings.rate_limit_per_account,
            per_recipient=settings.rate_limit_per_recipient,
            default_daily_cap=settings.daily_cap or None,
        )

    def operator_cap(self, policy: AccountPolicy) -> int | None:
        """The operator's daily cap for this account (None: none)."""
        if policy.operator_daily_cap is not None:
            return policy.operator_daily_cap or None
        return self.default_daily_cap

    def daily_cap(self, policy: AccountPolicy) -> int | None:
        """Messages per day for this account: its own cap within the operator's."""
        operator, own = self.operator_cap(policy), policy.daily_cap
        if operator is None or own is None:
            return own if operator is None else operator
        return min(own, operator)

    def exceeded(self, policy: AccountPolicy, fields: Iterable[str]) -> dict[str, Any]:
        """Of ``fields`` (camelCase), those set above the operator's: {field: what exceeds}."""
        found: dict[str, Any] = {}
        chosen = set(fields)
        for name, value, ceiling in (
            ("rateLimit", policy.rate_limit, self.per_account),
            ("recipientRateLimit", policy.recipient_rate_limit, self.per_recipient),
        ):
            windows = exceeded_windows(value, ceiling) if name in chosen and value else []
            if windows:
                found[name] = windows
        cap = self.operator_cap(policy)
        if "dailyCap" in chosen and cap is not None and (policy.daily_cap or 0) > cap:
            found["dailyCap"] = cap
        return found


def create_account(conn: sa.Connection, name: str, now: datetime) -> str:
    """A new account; its name is unique, since commands pick an account by id or name."""
    taken = conn.execute(sa.select(accounts.c.id).where(accounts.c.name == name)).first()
    if taken is not None:
        raise InvalidRequest(
            f"An account named '{name}' already exists ({taken.id}); choose another name.",
            details={"field": "name"},
        )
    account_id = new_id("acc")
    conn.execute(sa.insert(accounts).values(id=account_id, name=name, settings={}, created_at=now))
    return account_id


def find_account(conn: sa.Connection, id_or_name: str) -> dict[str, Any]:
    query = (
        sa.select(accounts)
        .where(sa.or_(accounts.c.id == id_or_name, accounts.c.name == id_or_name))
        .order_by(accounts.c.created_at)
    )
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound("Account not found.")
    return dict(row)


def list_accounts(conn: sa.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(accounts).order_by(accounts.c.created_at)).mappings()
    return [dict(r) for r in rows]


# The settings as stored JSON text: parsed and validated once per distinct text (below).
_POLICY = "account_policy"  # its batch_memo entries: (_POLICY, account id)
_SETTINGS = Direct(
    sa.select(sa.cast(accounts.c.settings, sa.Text).label("settings")).where(
        accounts.c.id == sa.bindparam("account_id")
    )
)


def policy_of(conn: sa.Connection, account_id: str) -> AccountPolicy:
    """The account's policy, read fresh (a change applies to the next send in every process);
    read once per group-committed batch (``batch_memo``)."""
    memo = batch_memo(conn)
    key = (_POLICY, account_id)
    if memo is not None and key in memo:
        policy: AccountPolicy = memo[key]
        return policy
    row = _SETTINGS.first(conn, {"account_id": account_id})
    if row is None:
        raise NotFound("Account not found.")
    policy = _parse_policy(row["settings"])
    if memo is not None:
        memo[key] = policy
    return policy


@functools.lru_cache(maxsize=1024)
def _parse_policy(settings_json: str) -> AccountPolicy:
    # Validation (time zones, limit strings) costs more than the read; a policy is immutable.
    return AccountPolicy.model_validate_json(settings_json)


def update_policy(conn: sa.Connection, account_id: str, changes: dict[str, Any]) -> AccountPolicy:
    current = policy_of(conn, account_id).model_dump(by_alias=True)
    policy = AccountPolicy.model_validate({**current, **changes})
    conn.execute(
        sa.update(accounts)
        .where(accounts.c.id == account_id)
        .values(settings=policy.model_dump(by_alias=True, exclude_defaults=True))
    )
    memo = batch_memo(conn)
    if memo is not None:
        memo.pop((_POLICY, account_id), None)
    return policy
