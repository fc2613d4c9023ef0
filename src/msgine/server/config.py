"""Gateway settings from the environment and ./.env (pydantic-settings).

Every setting has a safe default so ``msgine serve`` works with no configuration. Secrets are
``SecretStr`` so they never show in a repr or a validation error.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MSGINE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path("msgine-data")
    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    master_key: SecretStr | None = None
    master_key_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)

    # What one HTTP connection may cost the server; see docs/server-limits.md.
    max_header_bytes: int = Field(default=32 * 1024, ge=4 * 1024, le=1024 * 1024)
    max_headers: int = Field(default=100, ge=16, le=1000)
    header_timeout: float = Field(default=10.0, gt=0, le=300)
    body_timeout: float = Field(default=30.0, gt=0, le=600)
    keepalive_timeout: int = Field(default=5, ge=1, le=300)
    max_connections: int = Field(default=1000, ge=1, le=100_000)

    webhook_allow_private: bool = False
    webhook_ca_bundle: Path | None = None
    # Ports a webhook URL may name: comma list of ports and low-high ranges (docs/webhooks.md).
    webhook_allowed_ports: str = "443,1024-65535"
    webhook_retry_schedule: str | None = None
    webhook_timeout: float = Field(default=10.0, gt=0, le=30)
    egress_ips: str | None = None

    # Rate limits in `limits` notation; see docs/rate-limits.md.
    rate_limit_per_key: str = "100/minute;20/second"
    rate_limit_per_account: str = "1000/minute"
    rate_limit_per_ip: str = "300/minute"
    rate_limit_per_recipient: str = "10/hour"
    rate_limit_strategy: Literal["moving-window", "sliding-window", "fixed-window"] = (
        "moving-window"
    )
    # Messages (recipients) per account per rolling day; 0 turns the cap off. Accounts may
    # lower it; the operator raises it for one account with `msgine accounts set-daily-cap`.
    daily_cap: int = Field(default=10_000, ge=0)
    auth_failure_limit: str = "10/5minutes"
    lockout_seconds: int = Field(default=900, ge=1, le=7 * 86400)
    # How long an account's limits, countries and daily cap are cached per process.
    rate_limit_policy_ttl: float = Field(default=5.0, ge=0, le=3600)
    rate_limit_redis_timeout: float = Field(default=0.3, gt=0, le=10)
    # Exact in-process windows kept (about 1 KiB each); past it, a fixed 2 MiB sketch per
    # (kind of limit, window) counts the rest. Bounds memory whatever clients send.
    rate_limit_memory_windows: int = Field(default=20_000, ge=100, le=10_000_000)
    redis_key_prefix: str = Field(default="msgine", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    trusted_proxies: str = ""

    # The console (docs/console.md): session lifetimes and sign-in failures per user.
    console_idle_timeout: int = Field(default=1800, ge=60, le=86400)
    console_absolute_timeout: int = Field(default=12 * 3600, ge=300, le=30 * 86400)
    console_signin_failures: str = "5/15minutes"

    price_per_segment: int = Field(default=30, ge=0)
    currency: str = "UGX"

    simulator_dlr_delay: float = Field(default=0.5, ge=0)
    # Staging only: live keys' messages may go to the simulator when no real carrier's route
    # covers a destination (the send response then says so). Off: such sends are refused.
    allow_simulator_for_live: bool = False
    # How often each worker publishes its carriers' health (for /readyz and carriers status).
    carrier_health_interval: float = Field(default=5.0, gt=0, le=60)
    worker_poll_interval: float = Field(default=0.2, gt=0)
    worker_batch_size: int = Field(default=100, ge=1, le=1000)
    job_lease_seconds: float = Field(default=60.0, gt=0)

    security_log_path: Path | None = None
    # Where the audit chain's head is published besides the security log (see
    # docs/audit-and-logging.md), and how often it is checked for a change.
    audit_anchor_file: Path | None = None
    audit_anchor_interval: float = Field(default=1.0, ge=0.05, le=3600)
    log_level: str = "INFO"

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: str | None) -> str | None:
        if value:
            for part in value.split(","):
                if float(part) < 0:
                    raise ValueError("retry delays must be non-negative seconds")
        return value

    @field_validator(
        "rate_limit_per_key",
        "rate_limit_per_account",
        "rate_limit_per_ip",
        "rate_limit_per_recipient",
        "auth_failure_limit",
        "console_signin_failures",
    )
    @classmethod
    def _check_limit(cls, value: str) -> str:
        from msgine.server.ratelimit import parse_limits  # the gateway's own notation check

        parse_limits(value)
        return value

    @field_validator("webhook_allowed_ports")
    @classmethod
    def _check_ports(cls, value: str) -> str:
        from msgine.server.webhooks import parse_port_ranges

        parse_port_ranges(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)
        return value

    @field_validator("currency")
    @classmethod
    def _check_currency(cls, value: str) -> str:
        if not (len(value) == 3 and value.isalpha()):
            raise ValueError("currency must be a 3-letter ISO 4217 code")
        return value.upper()

    @cached_property
    def sqlalchemy_url(self) -> str:
        """The SQLAlchemy URL: ``postgresql://`` is mapped to the psycopg 3 driver."""
        if self.database_url is None:
            return f"sqlite:///{(self.data_dir / 'msgine.db').resolve()}"
        url = self.database_url.get_secret_value()
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def database_description(self) -> str:
        """Which database, for start-up lines: kind and place, never a credential."""
        from sqlalchemy.engine import make_url

        url = make_url(self.sqlalchemy_url)
        if url.get_backend_name() == "sqlite":
            return f"SQLite {url.database}"
        port = f":{url.port}" if url.port else ""
        return f"PostgreSQL {url.host or 'localhost'}{port}/{url.database or ''}"

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]

    @property
    def egress_ip_list(self) -> list[str]:
        return [p.strip() for p in (self.egress_ips or "").split(",") if p.strip()]

    @property
    def resolved_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"


def load_settings() -> Settings:
    return Settings()
