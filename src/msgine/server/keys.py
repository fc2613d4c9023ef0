"""API keys: creation, authentication, scopes, IP allow-lists, rotation and revocation.

A key is shown once at creation. The database holds only a keyed hash (HMAC-SHA256 with a data
key), so neither a database dump nor a log line can be turned back into a working key. Every
request re-reads the key row, so a revocation in any process is effective on the next request.
Creation, rotation and revocation each append an audit entry in the same transaction, and a
revocation raises ``key.revoked`` to the account's webhooks, so neither can be lost on its own.
A key acts only on keys of its own mode, and never makes, rotates into or replaces a key
stronger than itself (:func:`beyond` names the axes); the operator's CLI is not so bound.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from msgine._keyformat import PREFIXES, generate_key, parse_mode
from msgine.server import events
from msgine.server._ids import new_id
from msgine.server.audit import Actor, record
from msgine.server.crypto import Vault
from msgine.server.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from msgine.server.ratelimit import exceeded_windows, parse_limits
from msgine.server.storage import Direct, KeyedSelect, Lookup, api_keys

SCOPES = (
    "messages:send",
    "messages:read",
    "webhooks:manage",
    "keys:manage",
    "compliance:manage",
    "audit:read",
)
ROTATION_AGE_DAYS = 90
MAX_GRACE_HOURS = 24 * 30
#: The actor of changes the gateway makes on its own (the first key at first start).
SYSTEM = Actor(name="system")

Mode = Literal["live", "test"]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the authenticated key, never its secret."""

    key_id: str
    account_id: str
    mode: Mode
    scopes: frozenset[str]
    rate_limit: str | None

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise KeyForbidden(
                f"This API key lacks the '{scope}' scope.",
                reason="scope",
                key_id=self.key_id,
                details={"requiredScope": scope},
            )


class KeyRefused(Unauthorized):
    """A refused authentication (401). ``reason`` (one of ``AUTH_FAILURE_REASONS``) and
    ``key_id`` (when the key exists) are for the security log and metrics: the answer to the
    caller is the same for every reason, so it cannot probe which keys exist or were revoked."""

    def __init__(self, message: str, *, reason: str, key_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.key_id = key_id


class KeyForbidden(Forbidden):
    """A valid key refused here (403): outside its address allow-list, or without the scope."""

    def __init__(
        self, message: str, *, reason: str, key_id: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.reason = reason
        self.key_id = key_id


@dataclass(frozen=True)
class NewKey:
    """A freshly created key. ``secret`` is kept out of repr so it cannot leak into logs."""

    record: dict[str, Any]
    secret: str = field(repr=False)


def parse_scopes(scopes: Iterable[str] | None) -> list[str]:
    if scopes is None:
        return list(SCOPES)
    chosen = [s.strip() for s in scopes if s.strip()]
    unknown = sorted(set(chosen) - set(SCOPES))
    if unknown or not chosen:
        raise InvalidRequest(
            "Unknown or empty scopes.", details={"unknown": unknown, "allowed": list(SCOPES)}
        )
    return sorted(set(chosen), key=SCOPES.index)


def parse_networks(cidrs: Iterable[str] | None) -> list[str]:
    networks = []
    for cidr in cidrs or ():
        try:
            networks.append(str(ipaddress.ip_network(cidr.strip(), strict=False)))
        except ValueError:
            raise InvalidRequest(
                "Invalid IP allow-list entry (expected an address or CIDR).",
                details={"field": "allowedIps"},
            ) from None
    return networks


def ip_allowed(allowed: Sequence[str], client_ip: str | None) -> bool:
    if not allowed:
        return True
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(net) for net in allowed)


def create_key(
    conn: sa.Connection,
    vault: Vault,
    *,
    account_id: str,
    now: datetime,
    name: str = "",
    mode: Mode = "test",
    scopes: Iterable[str] | None = None,
    allowed_ips: Iterable[str] | None = None,
    expires_at: datetime | None = None,
    rate_limit: str | None = None,
    created_by: str = "cli",
    actor: Actor = SYSTEM,
) -> NewKey:
    """Create a key and audit it (``key.create``); the secret is in the result only."""
    new = _insert_key(
        conn,
        vault,
        account_id=account_id,
        now=now,
        name=name,
        mode=mode,
        scopes=scopes,
        allowed_ips=allowed_ips,
        expires_at=expires_at,
        rate_limit=rate_limit,
        created_by=created_by,
    )
    _audit(
        conn,
        vault,
        actor,
        "key.create",
        new.record,
        now,
        {"mode": new.record["mode"], "scopes": new.record["scopes"]},
    )
    return new


@dataclass(frozen=True)
class KeyRequest:
    """What a key asks for when it creates a key through the API; None means "as mine"."""

    mode: str | None = None
    scopes: Sequence[str] | None = None
    allowed_ips: Sequence[str] | None = None
    expires_at: datetime | None = None
    rate_limit: str | None = None


def create_key_by(
    conn: sa.Connection,
    vault: Vault,
    creator_id: str,
    wanted: KeyRequest,
    *,
    now: datetime,
    name: str,
    key_ceiling: str,
    actor: Actor,
) -> NewKey:
    """A key created by another key (the API): never stronger than its creator.

    Whatever the request leaves out is the creator's own (mode, scopes, address list, expiry,
    limit), so a restricted key makes restricted keys by default; whatever it asks for beyond
    the creator's is refused (403 naming each axis). An explicit ``rate_limit`` must also keep
    within the operator's per-key limit (MSGINE_RATE_LIMIT_PER_KEY). The CLI, the operator,
    uses :func:`create_key` and may grant anything.
    """
    creator = get_key(conn, creator_id)
    _check_rate_limit(wanted.rate_limit)
    candidate: dict[str, Any] = {
        "mode": wanted.mode or creator["mode"],
        "scopes": parse_scopes(creator["scopes"] if wanted.scopes is None else wanted.scopes),
        "allowed_ips": parse_networks(
            creator["allowed_ips"] if wanted.allowed_ips is None else wanted.allowed_ips
        ),
        "expires_at": wanted.expires_at or creator["expires_at"],
        "rate_limit": wanted.rate_limit or creator["rate_limit"],
    }
    exceeded = beyond(creator, candidate, key_ceiling)
    over_ceiling = exceeded_windows(wanted.rate_limit, key_ceiling) if wanted.rate_limit else []
    if over_ceiling:
        exceeded.setdefault("rateLimit", over_ceiling)
    refuse_if(exceeded, "The new key would be stronger than the key creating it")
    return create_key(
        conn,
        vault,
        account_id=creator["account_id"],
        now=now,
        name=name,
        created_by=creator["id"],
        actor=actor,
        **candidate,
    )


def beyond(creator: dict[str, Any], key: dict[str, Any], key_ceiling: str) -> dict[str, Any]:
    """Where ``key`` (a row or a candidate) grants more than ``creator``: {axis: what exceeds}.

    Axes: mode (another than the creator's), scopes (not held), allowedIps (networks outside
    every network of the creator's list; any list is inside "no list"), expiresAt (later than
    the creator's, or none when it has one) and rateLimit (windows of the creator's effective
    limit, its own or the operator's per-key default, not kept within).
    """
    exceeded: dict[str, Any] = {}
    if key["mode"] != creator["mode"]:
        exceeded["mode"] = key["mode"]
    extra = sorted(set(key["scopes"]) - set(creator["scopes"]), key=SCOPES.index)
    if extra:
        exceeded["scopes"] = extra
    wider = _outside(key["allowed_ips"], creator["allowed_ips"])
    if wider is not None:
        exceeded["allowedIps"] = wider
    if creator["expires_at"] is not None and (
        key["expires_at"] is None or key["expires_at"] > creator["expires_at"]
    ):
        exceeded["expiresAt"] = _iso(creator["expires_at"])
    windows = exceeded_windows(
        key["rate_limit"] or key_ceiling, creator["rate_limit"] or key_ceiling
    )
    if windows:
        exceeded["rateLimit"] = windows
    return exceeded


def _outside(networks: Sequence[str], allowed: Sequence[str]) -> list[str] | None:
    """The networks not inside any allowed one (None when all are, or nothing is restricted).
    An empty ``networks`` means every address, wider than any list."""
    if not allowed:
        return None
    if not networks:
        return ["any address"]
    parents = [ipaddress.ip_network(net) for net in allowed]
    outside = [
        net
        for net in networks
        if not any(_subnet(ipaddress.ip_network(net), parent) for parent in parents)
    ]
    return outside or None


def _subnet(net: ipaddress.IPv4Network | ipaddress.IPv6Network, parent: Any) -> bool:
    return net.version == parent.version and net.subnet_of(parent)


def refuse_if(exceeded: dict[str, Any], message: str) -> None:
    """403 ``forbidden`` naming each axis exceeded (never a secret: ids, scopes, limits)."""
    if exceeded:
        raise Forbidden(f"{message}: {', '.join(exceeded)}.", details={"exceeds": exceeded})


def check_reissue(
    conn: sa.Connection, caller_id: str, target: dict[str, Any], key_ceiling: str
) -> None:
    """Rotating or replacing ``target`` hands its new secret to the caller: refused unless the
    target is no stronger than the calling key."""
    caller = get_key(conn, caller_id)
    refuse_if(
        beyond(caller, target, key_ceiling),
        "This key cannot issue a replacement for a key stronger than itself",
    )


def _check_rate_limit(rate_limit: str | None) -> None:
    """Refuse a limit string the limiter could not use, instead of storing it."""
    if rate_limit is None:
        return
    try:
        parse_limits(rate_limit)
    except ValueError as exc:
        raise InvalidRequest(str(exc), details={"field": "rateLimit"}) from None


def _insert_key(
    conn: sa.Connection,
    vault: Vault,
    *,
    account_id: str,
    now: datetime,
    name: str = "",
    mode: Mode = "test",
    scopes: Iterable[str] | None = None,
    allowed_ips: Iterable[str] | None = None,
    expires_at: datetime | None = None,
    rate_limit: str | None = None,
    created_by: str = "cli",
    rotated_from: str | None = None,
) -> NewKey:
    if mode not in PREFIXES:
        raise InvalidRequest("mode must be 'test' or 'live'.", details={"field": "mode"})
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("Expiry must be in the future.", details={"field": "expiresAt"})
    _check_rate_limit(rate_limit)
    secret = generate_key(mode)
    record = {
        "id": new_id("key"),
        "account_id": account_id,
        "name": name[:200],
        "mode": mode,
        "key_hash": vault.key_hash(secret),
        "prefix": PREFIXES[mode],
        "last4": secret[-4:],
        "scopes": parse_scopes(scopes),
        "allowed_ips": parse_networks(allowed_ips),
        "rate_limit": rate_limit,
        "created_at": now,
        "created_by": created_by,
        "expires_at": expires_at,
        "rotated_from": rotated_from,
    }
    conn.execute(sa.insert(api_keys).values(**record))
    return NewKey(record=get_key(conn, str(record["id"])), secret=secret)


def get_key(
    conn: sa.Connection, key_id: str, account_id: str | None = None, mode: str | None = None
) -> dict[str, Any]:
    """One key; with ``account_id`` and ``mode``, only one of that account and mode (a key of
    the other mode is not found, as another account's is)."""
    query = sa.select(api_keys).where(api_keys.c.id == key_id)
    if account_id is not None:
        query = query.where(api_keys.c.account_id == account_id)
    if mode is not None:
        query = query.where(api_keys.c.mode == mode)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound("API key not found.")
    return dict(row)


def list_keys(
    conn: sa.Connection, account_id: str | None = None, mode: str | None = None
) -> list[dict[str, Any]]:
    query = sa.select(api_keys).order_by(api_keys.c.created_at)
    if account_id is not None:
        query = query.where(api_keys.c.account_id == account_id)
    if mode is not None:
        query = query.where(api_keys.c.mode == mode)
    return [dict(r) for r in conn.execute(query).mappings()]


def key_state(record: dict[str, Any], now: datetime) -> str:
    if record["revoked_at"] is not None:
        return "revoked"
    if record["expires_at"] is not None and record["expires_at"] <= now:
        return "expired"
    return "active"


def public_view(record: dict[str, Any], now: datetime) -> dict[str, Any]:
    """What listings show: never the secret or its hash; prefix and last four only."""
    age = now - record["created_at"]
    return {
        "id": record["id"],
        "account": record["account_id"],
        "name": record["name"],
        "mode": record["mode"],
        "redactedKey": f"{record['prefix']}...{record['last4']}",
        "scopes": record["scopes"],
        "allowedIps": record["allowed_ips"],
        "rateLimit": record["rate_limit"],
        "status": key_state(record, now),
        "createdAt": _iso(record["created_at"]),
        "expiresAt": _iso(record["expires_at"]),
        "revokedAt": _iso(record["revoked_at"]),
        "lastUsedAt": _iso(record["last_used_at"]),
        "rotatedFrom": record["rotated_from"],
        "replacedBy": record["replaced_by"],
        "ageDays": age.days,
        "rotationDue": age >= timedelta(days=ROTATION_AGE_DAYS),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


# Built once: constructing a statement per request costs more than running it.
_BY_HASH = Direct(sa.select(api_keys).where(api_keys.c.key_hash == sa.bindparam("digest")))
# What authentication needs, and no more: it runs on every request. The lists come as JSON
# text, parsed once per distinct value (see _json_tuple).
_CREDENTIALS = KeyedSelect(
    sa.select(
        api_keys.c.id,
        api_keys.c.account_id,
        api_keys.c.mode,
        api_keys.c.key_hash,
        sa.cast(api_keys.c.scopes, sa.Text).label("scopes"),
        sa.cast(api_keys.c.allowed_ips, sa.Text).label("allowed_ips"),
        api_keys.c.rate_limit,
        api_keys.c.expires_at,
        api_keys.c.revoked_at,
    ),
    api_keys.c.key_hash,
)


def _read_credentials(conn: sa.Connection, digests: list[str]) -> dict[str, Any]:
    return {row["key_hash"]: row for row in _CREDENTIALS.all(conn, {}, digests)}


#: The credentials of presented keys by their digest (``key_digest``): the requests arriving
#: together are answered by one statement (``Database.alookup``).
CREDENTIALS = Lookup(_read_credentials)

_INVALID = "Invalid API key."


def key_digest(vault: Vault, presented: str | None) -> str:
    """The digest a presented key is stored under; raises 401 for a missing or malformed key
    (a wrong checksum needs no database lookup at all)."""
    if not presented:
        raise KeyRefused("Missing API key.", reason="missing")
    if parse_mode(presented) is None:
        raise KeyRefused(_INVALID, reason="malformed")
    return vault.key_hash(presented)


def principal_of(row: Any, digest: str, client_ip: str | None, now: datetime) -> Principal:
    """The principal of a key's credentials ``row`` (read through ``CREDENTIALS``; None when
    none was found), or raise 401/403.

    Every failure says the same thing, so a caller cannot tell an unknown key from a revoked one;
    the exception's ``reason`` tells the operator (security log, ``msgine_auth_failures``).
    """
    if row is None or not hmac.compare_digest(row["key_hash"], digest):
        raise KeyRefused(_INVALID, reason="unknown")
    state = key_state(row, now)
    if state != "active":
        raise KeyRefused(_INVALID, reason=state, key_id=row["id"])
    if not ip_allowed(_json_tuple(row["allowed_ips"]), client_ip):
        raise KeyForbidden(
            "This API key is not allowed from this address.",
            reason="ip_not_allowed",
            key_id=row["id"],
        )
    return Principal(
        key_id=row["id"],
        account_id=row["account_id"],
        mode=row["mode"],
        scopes=frozenset(_json_tuple(row["scopes"])),
        rate_limit=row["rate_limit"],
    )


@functools.lru_cache(maxsize=1024)
def _json_tuple(text: str) -> tuple[str, ...]:
    """A key's scopes or address list, from its JSON text (few distinct values exist)."""
    return tuple(json.loads(text))


def rotate_key(
    conn: sa.Connection,
    vault: Vault,
    key_id: str,
    *,
    now: datetime,
    grace: timedelta,
    account_id: str | None = None,
    mode: str | None = None,
    created_by: str = "cli",
    actor: Actor = SYSTEM,
) -> NewKey:
    """Issue a replacement with the same settings; the old key keeps working for ``grace``."""
    if not timedelta(0) <= grace <= timedelta(hours=MAX_GRACE_HOURS):
        raise InvalidRequest(
            f"graceHours must be between 0 and {MAX_GRACE_HOURS}.", details={"field": "graceHours"}
        )
    old = get_key(conn, key_id, account_id, mode)
    if key_state(old, now) != "active":
        raise InvalidRequest("Only an active key can be rotated.")
    new = issue_replacement(conn, vault, old, now=now, created_by=created_by)
    old_expiry = now + grace
    if old["expires_at"] is not None:
        old_expiry = min(old_expiry, old["expires_at"])
    values: dict[str, Any] = {"replaced_by": new.record["id"], "expires_at": old_expiry}
    if grace == timedelta(0):
        values.update(revoked_at=now, revoked_reason="rotated")
    conn.execute(sa.update(api_keys).where(api_keys.c.id == old["id"]).values(**values))
    details = {"newKeyId": new.record["id"], "graceHours": grace.total_seconds() / 3600}
    _audit(conn, vault, actor, "key.rotate", old, now, details)
    if grace == timedelta(0):
        _emit_revoked(conn, vault, old, now, reason="rotated", replaced_by=new.record["id"])
    return new


def issue_replacement(
    conn: sa.Connection, vault: Vault, old: dict[str, Any], *, now: datetime, created_by: str
) -> NewKey:
    """A new key with ``old``'s account, name, mode, scopes, address list, limit and expiry."""
    return _insert_key(
        conn,
        vault,
        account_id=old["account_id"],
        now=now,
        name=old["name"],
        mode=old["mode"],
        scopes=old["scopes"],
        allowed_ips=old["allowed_ips"],
        expires_at=old["expires_at"],
        rate_limit=old["rate_limit"],
        created_by=created_by,
        rotated_from=old["id"],
    )


def revoke_key(
    conn: sa.Connection,
    key_id: str,
    *,
    now: datetime,
    vault: Vault,
    reason: str = "revoked",
    account_id: str | None = None,
    mode: str | None = None,
    actor: Actor = SYSTEM,
    replaced_by: str | None = None,
) -> dict[str, Any]:
    """Revoke at once (every process re-reads the key per request), audit it and raise
    ``key.revoked``. Revoking a revoked key changes and records nothing."""
    record = get_key(conn, key_id, account_id, mode)
    if record["revoked_at"] is not None:
        return record
    values: dict[str, Any] = {"revoked_at": now, "revoked_reason": reason}
    if replaced_by is not None:
        values["replaced_by"] = replaced_by
    conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id).values(**values))
    _audit(conn, vault, actor, "key.revoke", record, now, {"reason": reason})
    _emit_revoked(conn, vault, record, now, reason=reason, replaced_by=replaced_by)
    return get_key(conn, key_id)


def find_by_secret(conn: sa.Connection, vault: Vault, presented: str) -> dict[str, Any] | None:
    """The key row a full key belongs to (by its keyed hash), or None if this gateway never
    issued it. Used by the leak scanner; never logs or stores ``presented``."""
    return _BY_HASH.first(conn, {"digest": vault.key_hash(presented)})


def touch_last_used(conn: sa.Connection, key_ids: Iterable[str], now: datetime) -> None:
    """Move ``last_used_at`` forward to ``now`` (never back: processes flush out of order)."""
    ids = list(key_ids)
    if ids:
        conn.execute(
            sa.update(api_keys)
            .where(
                api_keys.c.id.in_(ids),
                sa.or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < now),
            )
            .values(last_used_at=now)
        )


def _audit(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    action: str,
    key: dict[str, Any],
    now: datetime,
    details: dict[str, Any],
) -> None:
    record(
        conn,
        vault,
        actor,
        action,
        now=now,
        target=key["id"],
        account_id=key["account_id"],
        details=details,
    )


def _emit_revoked(
    conn: sa.Connection,
    vault: Vault,
    key: dict[str, Any],
    now: datetime,
    *,
    reason: str,
    replaced_by: str | None,
) -> None:
    """``key.revoked`` to the account's webhooks: ids and the reason only, never the secret."""
    events.emit(
        conn,
        vault,
        account_id=key["account_id"],
        mode=key["mode"],
        event_type="key.revoked",
        now=now,
        fields={"status": "revoked"},
        data={"keyId": key["id"], "mode": key["mode"], "reason": reason, "replacedBy": replaced_by},
    )
