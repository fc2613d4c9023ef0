"""The schema. Personal data columns are ciphertext (LargeBinary) plus keyed blind indexes.

Alembic migrations under ``migrations/`` create exactly this schema; a test compares them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from msgine.server._memo import remember_last


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use aware UTC datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)

    # On SQLite the value is stored as text. SQLAlchemy's own conversion (a regex and a format
    # string per value) runs for every time column of every row on the send path; these do
    # the same in one C call each, to the identical text (tests compare them).
    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _to_sqlite_text
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _from_sqlite_text
        return super().result_processor(dialect, coltype)


# One request or worker batch stores the same ``now`` in many columns and rows, and isoformat
# costs microseconds each time.
@remember_last
def _to_sqlite_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime stored; use aware UTC datetimes")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _from_sqlite_text(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = sa.String(40)
Time = UTCDateTime


def _id(name: str = "id") -> sa.Column[Any]:
    return sa.Column(name, Id, primary_key=True)


def _account() -> sa.Column[Any]:
    return sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False)


def _mode() -> sa.Column[Any]:
    """Test or live: each mode is a world of its own within an account (docs/test-and-live.md)."""
    return sa.Column("mode", sa.String(4), nullable=False)


def _partial(name: str, columns: list[str], where: sa.TextClause) -> sa.Index:
    """An index of only the rows ``where`` selects (SQLite and PostgreSQL both have them)."""
    return sa.Index(name, *columns, sqlite_where=where, postgresql_where=where)


def _unpurged(name: str, time_column: str) -> sa.Index:
    """Rows retention has yet to purge, by account and age: each hourly purge then reads only
    the rows it will purge, not every row the account ever had (a purged row stays, without
    its personal data, for statistics)."""
    return _partial(name, ["account_id", time_column], sa.text("purged_at IS NULL"))


data_keys = sa.Table(
    "data_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("master_kid", sa.String(16), nullable=False),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", Time, nullable=False),
)

accounts = sa.Table(
    "accounts",
    metadata,
    _id(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("signing_secret", sa.LargeBinary),
    sa.Column("signing_secret_prev", sa.LargeBinary),
    sa.Column("signing_secret_prev_expires_at", Time),
    # The test world's callback signing secrets (the three above are live's).
    sa.Column("test_signing_secret", sa.LargeBinary),
    sa.Column("test_signing_secret_prev", sa.LargeBinary),
    sa.Column("test_signing_secret_prev_expires_at", Time),
    sa.Column("created_at", Time, nullable=False),
    # ``--account NAME`` must name one account (migration 0005 renamed older duplicates).
    sa.Index("uq_accounts_name", "name", unique=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    _id(),
    _account(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("mode", sa.String(4), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("last4", sa.String(4), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("allowed_ips", sa.JSON, nullable=False),
    sa.Column("rate_limit", sa.String(200)),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("expires_at", Time),
    sa.Column("revoked_at", Time),
    sa.Column("revoked_reason", sa.String(32)),
    sa.Column("last_used_at", Time),
    sa.Column("rotated_from", Id),
    sa.Column("replaced_by", Id),
)

messages = sa.Table(
    "messages",
    metadata,
    _id(),
    _account(),
    sa.Column("key_id", Id),
    sa.Column("mode", sa.String(4), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("sender", sa.String(32)),
    sa.Column("content", sa.LargeBinary),
    sa.Column("encoding", sa.String(8), nullable=False),
    sa.Column("segments", sa.Integer, nullable=False),
    sa.Column("cost", sa.Integer, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("callback_url", sa.String(2048)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("scheduled_for", Time),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("purged_at", Time),
    sa.Index("ix_messages_account_created", "account_id", "created_at"),
    _unpurged("ix_messages_unpurged", "created_at"),
)

recipients = sa.Table(
    "recipients",
    metadata,
    _id(),
    sa.Column("message_id", Id, sa.ForeignKey("messages.id"), nullable=False, index=True),
    _account(),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("phone", sa.LargeBinary),
    sa.Column("phone_index", sa.String(32), nullable=False),
    sa.Column("region", sa.String(2)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error_code", sa.String(64)),
    sa.Column("carrier_message_id", sa.String(64)),
    sa.Column("submitted_at", Time),
    sa.Column("sent_at", Time),
    sa.Column("delivered_at", Time),
    sa.Column("failed_at", Time),
    sa.Column("updated_at", Time, nullable=False),
    # The carrier that has (or is being given) this recipient; with ``submitted_at`` set and no
    # outcome yet, a submit to it may have been in flight when a worker died.
    sa.Column("carrier", sa.String(64)),
    sa.Index("ix_recipients_account_phone", "account_id", "phone_index"),
    # Receipts are matched by the carrier's own message id.
    sa.Index("ix_recipients_carrier_message", "carrier", "carrier_message_id"),
    # The few recipients whose outcome nobody knows, for a late receipt to settle.
    _partial("ix_recipients_unknown", ["carrier"], sa.text("status = 'unknown'")),
)

status_events = sa.Table(
    "status_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", Id, nullable=False, index=True),
    sa.Column("recipient_id", Id, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error_code", sa.String(64)),
    sa.Column("carrier_message_id", sa.String(64)),
    sa.Column("occurred_at", Time, nullable=False),
    sa.Column("carrier", sa.String(64)),
    # Why, for operators: a failover's reason, a carrier's state word. Never personal data.
    sa.Column("detail", sa.String(200)),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("ref", sa.String(64), nullable=False),
    sa.Column("due_at", Time, nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_until", Time),
    sa.Column("locked_by", sa.String(64)),  # the claim's owner (msgine.server._process)
    sa.Column("last_error", sa.String(200)),
    sa.Column("created_at", Time, nullable=False),
    sa.UniqueConstraint("kind", "ref", name="uq_jobs_kind_ref"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("account_id", Id, primary_key=True),
    sa.Column("mode", sa.String(4), primary_key=True),
    # The client's key as Vault.idempotency_hash (keyed HMAC), never the key itself.
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    # Erasure and retention remove a message's stored response by its id.
    sa.Column("message_id", Id, nullable=False, index=True),
    sa.Column("response", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("expires_at", Time, nullable=False, index=True),
)

inbound_messages = sa.Table(
    "inbound_messages",
    metadata,
    _id(),
    _account(),
    _mode(),
    sa.Column("phone", sa.LargeBinary),
    sa.Column("phone_index", sa.String(32), nullable=False),
    sa.Column("to_number", sa.String(32)),
    sa.Column("body", sa.LargeBinary),
    sa.Column("keyword", sa.String(16)),
    sa.Column("carrier_message_id", sa.String(64)),
    sa.Column("received_at", Time, nullable=False),
    sa.Column("purged_at", Time),
    sa.Column("carrier", sa.String(64)),
    sa.Index("ix_inbound_account_phone", "account_id", "phone_index"),
    # A carrier redelivers a message it saw no acknowledgement for: stored once.
    sa.Index("ix_inbound_carrier_message", "carrier", "carrier_message_id"),
    _unpurged("ix_inbound_unpurged", "received_at"),
)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    _id(),
    _account(),
    _mode(),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column("description", sa.String(500)),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.String(64)),
    sa.Column("secret", sa.LargeBinary, nullable=False),
    sa.Column("prev_secret", sa.LargeBinary),
    sa.Column("prev_secret_expires_at", Time),
    sa.Column("first_failure_at", Time),
    sa.Column("last_success_at", Time),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    _id(),
    _account(),
    _mode(),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("message_id", Id, index=True),
    sa.Column("recipient_id", Id),
    sa.Column("phone_index", sa.String(32)),
    sa.Column("body", sa.LargeBinary),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("purged_at", Time),
    sa.Index("ix_events_account_phone", "account_id", "phone_index"),
    _unpurged("ix_events_unpurged", "created_at"),
)

# ``msgine webhooks listen`` sessions: while one of an account's is unexpired, its test-mode
# events are stored for it to follow even when no endpoint subscribes (msgine.server.events).
webhook_listeners = sa.Table(
    "webhook_listeners",
    metadata,
    _id(),
    _account(),
    sa.Column("expires_at", Time, nullable=False),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    _id(),
    _account(),
    sa.Column("event_id", Id, sa.ForeignKey("events.id"), nullable=False, index=True),
    sa.Column("endpoint_id", Id),
    sa.Column("url", sa.String(2048)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", Time, index=True),
    sa.Column("lease_until", Time),
    sa.Column("locked_by", sa.String(64)),  # the claim's owner (msgine.server._process)
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.String(100)),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("completed_at", Time),
    sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    # Retention keeps an event's payload while a delivery of it is open: a handful of rows.
    _partial("ix_webhook_deliveries_open", ["account_id"], sa.text("completed_at IS NULL")),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", Id, nullable=False, index=True),
    sa.Column("attempted_at", Time, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.String(100)),
    sa.Column("excerpt", sa.String(256)),
)

consents = sa.Table(
    "consents",
    metadata,
    _id(),
    _account(),
    _mode(),
    sa.Column("phone", sa.LargeBinary),
    sa.Column("phone_index", sa.String(32), nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("source", sa.LargeBinary, nullable=False),  # encrypted: free text about a person
    sa.Column("evidence", sa.LargeBinary),
    sa.Column("granted_at", Time, nullable=False),
    sa.Column("withdrawn_at", Time),
    sa.Column("withdrawn_reason", sa.String(64)),
    sa.Index("ix_consents_account_phone", "account_id", "phone_index"),
)

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("mode", sa.String(4), primary_key=True),
    sa.Column("phone_index", sa.String(32), primary_key=True),
    sa.Column("phone", sa.LargeBinary),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("created_at", Time, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("id", Id, nullable=False, unique=True),
    sa.Column("occurred_at", Time, nullable=False),
    sa.Column("account_id", Id),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(200)),
    sa.Column("source_ip", sa.String(64)),
    sa.Column("request_id", sa.String(64)),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

key_usage = sa.Table(
    "key_usage",
    metadata,
    sa.Column("key_id", Id, primary_key=True),
    sa.Column("hour", Time, primary_key=True),
    sa.Column("source_ip", sa.String(64), primary_key=True),
    sa.Column("requests", sa.Integer, nullable=False),
    # Requests refused because the key was revoked: someone still holds it (see incident.py).
    sa.Column("refused", sa.Integer, nullable=False, server_default=sa.text("0")),
)

simulator_submissions = sa.Table(
    "simulator_submissions",
    metadata,
    sa.Column("submit_key", sa.String(64), primary_key=True),
    sa.Column("carrier_message_id", sa.String(64), nullable=False, unique=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("calls", sa.Integer, nullable=False),
    sa.Column("submitted_at", Time, nullable=False),
)

# --- carriers and routes: operator configuration ------------------------------------------

carriers = sa.Table(
    "carriers",
    metadata,
    _id(),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    # The kind's non-secret settings, validated by its options model.
    sa.Column("options", sa.JSON, nullable=False),
    # The kind's credentials model as JSON, envelope-encrypted (bound to this row).
    sa.Column("credentials", sa.LargeBinary),
    sa.Column("on_uncertain_submit", sa.String(16), nullable=False),
    sa.Column("retry_budget", sa.Integer, nullable=False),
    sa.Column("inbound_account_id", Id),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    # The token in the carrier's callback URL (HTTP upstreams; carriers/_callbacks.py),
    # envelope-encrypted like the credentials (the connector puts the URL in its submits).
    sa.Column("callback_token", sa.LargeBinary),
)

routes = sa.Table(
    "routes",
    metadata,
    _id(),
    # An account's own route overrides the gateway-wide ones (account_id NULL).
    sa.Column("account_id", Id, sa.ForeignKey("accounts.id")),
    sa.Column("prefix", sa.String(16)),
    sa.Column("country", sa.String(2)),
    sa.Column("carriers", sa.JSON, nullable=False),
    sa.Column("price_per_segment", sa.Integer, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

carrier_health = sa.Table(
    "carrier_health",
    metadata,
    sa.Column("carrier", sa.String(64), primary_key=True),
    sa.Column("worker", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("binds_up", sa.Integer, nullable=False),
    sa.Column("binds_wanted", sa.Integer, nullable=False),
    sa.Column("window_in_use", sa.Integer, nullable=False),
    sa.Column("detail", sa.String(200)),
    sa.Column("updated_at", Time, nullable=False),
)

carrier_receipts = sa.Table(
    "carrier_receipts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("carrier", sa.String(64), nullable=False),
    sa.Column("carrier_message_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("carrier_state", sa.String(32), nullable=False),
    sa.Column("error_code", sa.String(64)),
    sa.Column("done_at", Time),
    sa.Column("received_at", Time, nullable=False),
    sa.Index("ix_carrier_receipts_message", "carrier", "carrier_message_id"),
)

# Callback requests already taken, per carrier (a digest of the provider's signed delivery id
# and time): a replay of a captured request is refused. Rows older than an hour are purged.
carrier_callbacks = sa.Table(
    "carrier_callbacks",
    metadata,
    sa.Column("carrier", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("received_at", Time, nullable=False),
    sa.Index("ix_carrier_callbacks_received", "received_at"),
)

# A carrier's throughput schedule shared by all worker processes (see carriers/_throttle.py):
# ``tat`` is the Unix time of its next free send slot.
carrier_throttle = sa.Table(
    "carrier_throttle",
    metadata,
    sa.Column("carrier", sa.String(64), primary_key=True),
    sa.Column("tat", sa.Float, nullable=False),
)

# --- analytics ----------------------------------------------------------------------------

# Per-day message counters, changed in the transaction of each acceptance and status change
# (see msgine.server.analytics): the analytics routes read a few rows per day, never the
# messages. ``day`` is the UTC day a message was due (scheduledFor, else its acceptance); a
# recipient's delivery or failure counts on its message's day, whenever it happens.
daily_message_counts = sa.Table(
    "daily_message_counts",
    metadata,
    sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("mode", sa.String(4), primary_key=True),
    sa.Column("channel", sa.String(8), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("sent", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("delivered", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("failed", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("cost", sa.BigInteger, nullable=False, server_default=sa.text("0")),
)


# --- console users and their sessions (see msgine.server.console) -------------------------

console_users = sa.Table(
    "console_users",
    metadata,
    _id(),
    _account(),
    # The sign-in name, lower-cased; one user per address across the gateway.
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    # argon2id, in the PHC string format (parameters and salt included).
    sa.Column("password_hash", sa.String(255), nullable=False),
    # A one-time password from the operator: the user chooses their own at first sign-in.
    sa.Column("password_must_change", sa.Boolean, nullable=False),
    # The TOTP secret, sealed with the vault; pending until ``totp_enabled_at`` is set.
    sa.Column("totp_secret", sa.LargeBinary),
    sa.Column("totp_enabled_at", Time),
    # The last time step a code was accepted for: a code is never accepted twice.
    sa.Column("totp_last_step", sa.BigInteger),
    # Keyed hashes of the unused recovery codes.
    sa.Column("recovery_codes", sa.JSON, nullable=False),
    sa.Column("disabled_at", Time),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("last_sign_in_at", Time),
)

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    _id(),
    # A keyed hash of the cookie's token: a database dump holds no usable session.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", Id, sa.ForeignKey("console_users.id"), nullable=False, index=True),
    _account(),
    # ``full`` once every sign-in step is done; before, the step still due.
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("last_seen_at", Time, nullable=False),
    sa.Column("ended_at", Time),
    sa.Column("source_ip", sa.String(64)),
    sa.Column("user_agent", sa.String(200)),
)


# One row per process: ``/readyz`` rewrites its own to prove the database still takes writes.
write_probes = sa.Table(
    "write_probes",
    metadata,
    sa.Column("owner", sa.String(64), primary_key=True),
    sa.Column("checked_at", Time, nullable=False),
)
