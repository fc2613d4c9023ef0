"""Webhook endpoints of an account: registration, secrets and rotation, deliveries log, replay.

Domain functions taking a connection, so the API and the CLI share them and each change lands in
one transaction together with its audit entry. An endpoint has the mode of the key that
registered it: it receives only that mode's events, and only keys of that mode see or change it.
Secrets are stored encrypted, bound to their row and column; they leave this module only as the
return value of create and rotate (shown once) and as the signing keys the dispatcher asks for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa

from msgine.server._ids import new_id
from msgine.server.audit import Actor, record
from msgine.server.crypto import Vault
from msgine.server.errors import InvalidRequest, NotFound
from msgine.server.events import EVENT_TYPES, audience_changed, iso
from msgine.server.logging import security_event
from msgine.server.storage import (
    accounts,
    events,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)
from msgine.webhooks import generate_secret

ALL_EVENTS: Final = "*"
MAX_ENDPOINTS: Final = 50
MAX_GRACE_HOURS: Final = 7 * 24
DEFAULT_GRACE_HOURS: Final = 24.0
MAX_DELIVERY_PAGE: Final = 100
_ENDPOINT_SECRET: Final = {"table": "webhook_endpoints", "column": "secret"}
_ENDPOINT_PREV: Final = {"table": "webhook_endpoints", "column": "prev_secret"}


@dataclass(frozen=True)
class _SecretColumns:
    """Where an account keeps one mode's callback signing secrets: live and test each have
    their own, so a test key never sees nor changes the secret that signs live callbacks."""

    secret: str
    previous: str
    expires: str

    @classmethod
    def of(cls, mode: str) -> _SecretColumns:
        prefix = "" if mode == "live" else "test_"
        return cls(
            f"{prefix}signing_secret",
            f"{prefix}signing_secret_prev",
            f"{prefix}signing_secret_prev_expires_at",
        )


@dataclass(frozen=True)
class NewSecret:
    """A secret to show once, with the row it belongs to."""

    owner_id: str
    secret: str = field(repr=False)
    previous_expires_at: datetime | None


# --- validation ---------------------------------------------------------------------------------


def normalise_events(requested: Iterable[str] | None) -> list[str]:
    """Stored subscription: ``[]`` means every event (also ones added later)."""
    if requested is None:
        return []
    wanted = list(dict.fromkeys(requested))
    if ALL_EVENTS in wanted:
        return []
    unknown = [name for name in wanted if name not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest(
            "Unknown event type.",
            details={"unknownEvents": unknown[:10], "allowed": list(EVENT_TYPES)},
        )
    return wanted


# --- endpoints ----------------------------------------------------------------------------------


def create_endpoint(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    *,
    account_id: str,
    mode: str,
    url: str,
    subscribed: list[str],
    description: str | None,
    now: datetime,
) -> tuple[dict[str, Any], str]:
    """Store a new endpoint (URL already checked) and return its row and its secret."""
    count = conn.execute(
        sa.select(sa.func.count())
        .select_from(webhook_endpoints)
        .where(webhook_endpoints.c.account_id == account_id)
    ).scalar_one()
    if count >= MAX_ENDPOINTS:
        raise InvalidRequest(
            f"An account can have at most {MAX_ENDPOINTS} webhook endpoints.",
            details={"reason": "too_many_endpoints"},
        )
    endpoint_id = new_id("we")
    secret = generate_secret()
    conn.execute(
        sa.insert(webhook_endpoints).values(
            id=endpoint_id,
            account_id=account_id,
            mode=mode,
            url=url,
            events=subscribed,
            description=description,
            enabled=True,
            secret=vault.encrypt_str(secret, row_id=endpoint_id, **_ENDPOINT_SECRET),
            created_at=now,
            updated_at=now,
        )
    )
    audience_changed(conn)
    record(
        conn,
        vault,
        actor,
        "webhook.endpoint_created",
        now=now,
        target=endpoint_id,
        account_id=account_id,
        details={"events": subscribed or [ALL_EVENTS], "mode": mode},
    )
    return get_endpoint(conn, account_id, endpoint_id, mode), secret


def get_endpoint(
    conn: sa.Connection, account_id: str, endpoint_id: str, mode: str | None = None
) -> dict[str, Any]:
    """One endpoint of the account (and of ``mode``: the other mode's are not found)."""
    query = sa.select(webhook_endpoints).where(
        webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.account_id == account_id
    )
    if mode is not None:
        query = query.where(webhook_endpoints.c.mode == mode)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound("Webhook endpoint not found.")
    return dict(row)


def list_endpoints(
    conn: sa.Connection, account_id: str, mode: str | None = None
) -> list[dict[str, Any]]:
    query = sa.select(webhook_endpoints).where(webhook_endpoints.c.account_id == account_id)
    if mode is not None:
        query = query.where(webhook_endpoints.c.mode == mode)
    rows = conn.execute(
        query.order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def update_endpoint(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    *,
    account_id: str,
    endpoint_id: str,
    changes: dict[str, Any],
    now: datetime,
    mode: str | None = None,
) -> dict[str, Any]:
    """Apply ``changes`` (url, events, description, enabled; the URL already checked).

    Re-enabling forgets the failure streak, so the five-day clock starts again.
    """
    current = get_endpoint(conn, account_id, endpoint_id, mode)
    values: dict[str, Any] = {k: v for k, v in changes.items() if k in _UPDATABLE}
    if values.get("enabled") is True and not current["enabled"]:
        values.update(disabled_reason=None, first_failure_at=None)
    elif values.get("enabled") is False and current["enabled"]:
        values["disabled_reason"] = "manual"
        cancel_pending(conn, endpoint_id, now, reason="endpoint_disabled")
    conn.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(**values, updated_at=now)
    )
    audience_changed(conn)
    record(
        conn,
        vault,
        actor,
        "webhook.endpoint_updated",
        now=now,
        target=endpoint_id,
        account_id=account_id,
        details={"fields": sorted(values)},
    )
    return get_endpoint(conn, account_id, endpoint_id, mode)


_UPDATABLE: Final = frozenset({"url", "events", "description", "enabled"})


def delete_endpoint(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    *,
    account_id: str,
    endpoint_id: str,
    now: datetime,
    mode: str | None = None,
) -> None:
    """Remove the endpoint; its pending deliveries are cancelled (their history stays)."""
    get_endpoint(conn, account_id, endpoint_id, mode)
    cancel_pending(conn, endpoint_id, now, reason="endpoint_deleted")
    conn.execute(sa.delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
    audience_changed(conn)
    record(
        conn,
        vault,
        actor,
        "webhook.endpoint_deleted",
        now=now,
        target=endpoint_id,
        account_id=account_id,
    )


def cancel_pending(conn: sa.Connection, endpoint_id: str, now: datetime, *, reason: str) -> None:
    conn.execute(
        sa.update(webhook_deliveries)
        .where(
            webhook_deliveries.c.endpoint_id == endpoint_id,
            webhook_deliveries.c.status == "pending",
        )
        .values(
            status="cancelled",
            next_attempt_at=None,
            lease_until=None,
            locked_by=None,
            last_error=reason,
            completed_at=now,
        )
    )


def disable_endpoint(
    conn: sa.Connection,
    vault: Vault,
    *,
    endpoint_id: str,
    reason: str,
    now: datetime,
) -> bool:
    """Disable an endpoint the system gave up on (410 Gone, or failing for days); False if it
    was already disabled. Logged to the security log and the audit trail."""
    row = (
        conn.execute(sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
        .mappings()
        .first()
    )
    if row is None or not row["enabled"]:
        return False
    conn.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(enabled=False, disabled_reason=reason, updated_at=now)
    )
    audience_changed(conn)
    cancel_pending(conn, endpoint_id, now, reason="endpoint_disabled")
    record(
        conn,
        vault,
        SYSTEM_ACTOR,
        "webhook.endpoint_disabled",
        now=now,
        target=endpoint_id,
        account_id=row["account_id"],
        details={"reason": reason},
    )
    security_event(
        "webhook_endpoint_disabled",
        endpoint_id=endpoint_id,
        account_id=row["account_id"],
        reason=reason,
    )
    return True


SYSTEM_ACTOR: Final = Actor(name="system:webhooks")


# --- secrets ------------------------------------------------------------------------------------


def rotate_endpoint_secret(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    *,
    account_id: str,
    endpoint_id: str,
    grace: timedelta,
    now: datetime,
    mode: str | None = None,
) -> NewSecret:
    """A new secret; the current one keeps signing (as a second signature) for ``grace``."""
    row = get_endpoint(conn, account_id, endpoint_id, mode)
    old = vault.decrypt_str(row["secret"], row_id=endpoint_id, **_ENDPOINT_SECRET)
    secret = generate_secret()
    expires = now + grace if grace > timedelta(0) else None
    conn.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(
            secret=vault.encrypt_str(secret, row_id=endpoint_id, **_ENDPOINT_SECRET),
            prev_secret=(
                vault.encrypt_str(old, row_id=endpoint_id, **_ENDPOINT_PREV) if expires else None
            ),
            prev_secret_expires_at=expires,
            updated_at=now,
        )
    )
    _rotation_logged(
        conn, vault, actor, "webhook.secret_rotated", endpoint_id, account_id, grace, now
    )
    return NewSecret(endpoint_id, secret, expires)


def endpoint_secrets(vault: Vault, row: dict[str, Any], now: datetime) -> list[str]:
    """The secrets a delivery to this endpoint is signed with now, newest first."""
    secrets = [vault.decrypt_str(row["secret"], row_id=row["id"], **_ENDPOINT_SECRET)]
    if row["prev_secret"] is not None and _in_grace(row["prev_secret_expires_at"], now):
        secrets.append(vault.decrypt_str(row["prev_secret"], row_id=row["id"], **_ENDPOINT_PREV))
    return secrets


def rotate_account_secret(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    *,
    account_id: str,
    grace: timedelta,
    now: datetime,
    mode: str = "live",
) -> NewSecret:
    """The account signing secret of ``mode`` for per-message ``callbackUrl`` deliveries: the
    first call creates it, later calls replace it and keep the old one valid for ``grace``."""
    row = _account_row(conn, account_id)
    cols = _SecretColumns.of(mode)
    secret = generate_secret()
    expires = now + grace if grace > timedelta(0) and row[cols.secret] is not None else None
    previous = None
    if expires is not None:
        old = vault.decrypt_str(row[cols.secret], **_sealed(account_id, cols.secret))
        previous = vault.encrypt_str(old, **_sealed(account_id, cols.previous))
    conn.execute(
        sa.update(accounts)
        .where(accounts.c.id == account_id)
        .values(
            {
                cols.secret: vault.encrypt_str(secret, **_sealed(account_id, cols.secret)),
                cols.previous: previous,
                cols.expires: expires,
            }
        )
    )
    _rotation_logged(
        conn, vault, actor, "webhook.account_secret_rotated", account_id, account_id, grace, now
    )
    return NewSecret(account_id, secret, expires)


def _sealed(account_id: str, column: str) -> dict[str, str]:
    return {"table": "accounts", "column": column, "row_id": account_id}


def account_secrets(
    conn: sa.Connection, vault: Vault, account_id: str, now: datetime, mode: str = "live"
) -> list[str]:
    """The account's valid signing secrets of ``mode``, newest first; empty if none yet."""
    row = _account_row(conn, account_id)
    cols = _SecretColumns.of(mode)
    if row[cols.secret] is None:
        return []
    secrets = [vault.decrypt_str(row[cols.secret], **_sealed(account_id, cols.secret))]
    if row[cols.previous] is not None and _in_grace(row[cols.expires], now):
        secrets.append(vault.decrypt_str(row[cols.previous], **_sealed(account_id, cols.previous)))
    return secrets


def has_account_secret(conn: sa.Connection, account_id: str, mode: str) -> bool:
    return _account_row(conn, account_id)[_SecretColumns.of(mode).secret] is not None


def ensure_account_secret(
    conn: sa.Connection, vault: Vault, account_id: str, now: datetime, mode: str = "live"
) -> None:
    """Create the account signing secret of ``mode`` if a callbackUrl delivery needs one and
    none exists."""
    if _account_row(conn, account_id)[_SecretColumns.of(mode).secret] is None:
        rotate_account_secret(
            conn, vault, SYSTEM_ACTOR, account_id=account_id, grace=timedelta(0), now=now, mode=mode
        )


def _account_row(conn: sa.Connection, account_id: str) -> dict[str, Any]:
    row = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).mappings().first()
    if row is None:
        raise NotFound("Account not found.")
    return dict(row)


def _in_grace(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at > now


def _rotation_logged(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    action: str,
    target: str,
    account_id: str,
    grace: timedelta,
    now: datetime,
) -> None:
    grace_hours = grace.total_seconds() / 3600
    record(
        conn,
        vault,
        actor,
        action,
        now=now,
        target=target,
        account_id=account_id,
        details={"graceSeconds": int(grace.total_seconds())},
    )
    security_event(
        action.replace(".", "_"),
        target=target,
        account_id=account_id,
        actor=actor.name,
        grace_hours=round(grace_hours, 3),
    )


# --- deliveries log and replay ------------------------------------------------------------------


def list_deliveries(
    conn: sa.Connection,
    account_id: str,
    endpoint_id: str,
    *,
    limit: int,
    status: str | None = None,
    mode: str | None = None,
) -> list[dict[str, Any]]:
    """Newest deliveries of one endpoint, each with its attempts (oldest first)."""
    get_endpoint(conn, account_id, endpoint_id, mode)
    query = DELIVERIES.where(webhook_deliveries.c.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status)
    query = query.order_by(
        webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id.desc()
    ).limit(min(limit, MAX_DELIVERY_PAGE))
    return with_attempts(conn, [dict(r) for r in conn.execute(query).mappings()])


#: Deliveries with their event's type.
DELIVERIES: Final = sa.select(webhook_deliveries, events.c.type).join(
    events, events.c.id == webhook_deliveries.c.event_id
)


def find_delivery(conn: sa.Connection, *where: sa.ColumnElement[bool]) -> dict[str, Any]:
    """The one delivery ``where`` names, with its event's type and its attempts."""
    row = conn.execute(DELIVERIES.where(*where)).mappings().one()
    return with_attempts(conn, [dict(row)])[0]


def with_attempts(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    attempts = attempts_of(conn, [r["id"] for r in rows])
    return [{**r, "attempt_log": attempts.get(r["id"], [])} for r in rows]


def attempts_of(
    conn: sa.Connection, delivery_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    if not delivery_ids:
        return found
    rows = conn.execute(
        sa.select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id.in_(list(delivery_ids)))
        .order_by(webhook_attempts.c.id)
    ).mappings()
    for row in rows:
        found.setdefault(row["delivery_id"], []).append(dict(row))
    return found


def replay_delivery(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    *,
    account_id: str,
    endpoint_id: str,
    delivery_id: str,
    now: datetime,
    mode: str | None = None,
) -> dict[str, Any]:
    """Queue the same event (same id, same bytes) to the endpoint again, as a new delivery."""
    endpoint = get_endpoint(conn, account_id, endpoint_id, mode)
    original = (
        conn.execute(
            sa.select(webhook_deliveries).where(
                webhook_deliveries.c.id == delivery_id,
                webhook_deliveries.c.endpoint_id == endpoint_id,
            )
        )
        .mappings()
        .first()
    )
    if original is None:
        raise NotFound("Delivery not found.")
    if not endpoint["enabled"]:
        raise InvalidRequest(
            "The endpoint is disabled; enable it before replaying.",
            details={"reason": "endpoint_disabled"},
        )
    body = conn.execute(sa.select(events.c.body).where(events.c.id == original["event_id"]))
    if body.scalar() is None:
        raise InvalidRequest(
            "The event's body was purged by the retention policy.",
            details={"reason": "event_purged"},
        )
    replay_id = new_id("whd")
    conn.execute(
        sa.insert(webhook_deliveries).values(
            id=replay_id,
            account_id=account_id,
            event_id=original["event_id"],
            endpoint_id=endpoint_id,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    record(
        conn,
        vault,
        actor,
        "webhook.delivery_replayed",
        now=now,
        target=replay_id,
        account_id=account_id,
        details={"endpointId": endpoint_id, "replayOf": delivery_id},
    )
    return find_delivery(conn, webhook_deliveries.c.id == replay_id)


# --- views --------------------------------------------------------------------------------------


def endpoint_view(row: dict[str, Any]) -> dict[str, Any]:
    """The public form of an endpoint: never its secrets."""
    return {
        "id": row["id"],
        "url": row["url"],
        "livemode": row["mode"] == "live",
        "events": row["events"] or [ALL_EVENTS],
        "description": row["description"],
        "enabled": row["enabled"],
        "disabledReason": row["disabled_reason"],
        "previousSecretExpiresAt": _iso(row["prev_secret_expires_at"]),
        "lastSuccessAt": _iso(row["last_success_at"]),
        "failingSince": _iso(row["first_failure_at"]),
        "createdAt": _iso(row["created_at"]),
        "updatedAt": _iso(row["updated_at"]),
    }


def delivery_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "eventId": row["event_id"],
        "event": row.get("type"),
        "status": row["status"],
        "attempts": row["attempts"],
        "nextAttemptAt": _iso(row["next_attempt_at"]) if row["status"] == "pending" else None,
        "lastStatusCode": row["last_status_code"],
        "lastError": row["last_error"],
        "createdAt": _iso(row["created_at"]),
        "completedAt": _iso(row["completed_at"]),
        "attemptLog": [
            {
                "at": _iso(a["attempted_at"]),
                "statusCode": a["status_code"],
                "latencyMs": a["latency_ms"],
                "error": a["error"],
                "responseExcerpt": a["excerpt"],
            }
            for a in row.get("attempt_log", [])
        ],
    }


def _iso(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None
