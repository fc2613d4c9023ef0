"""Key compromise: contain a leaked key in one step and report what it was used for.

Containment is one transaction: the key is revoked (reason ``compromised``), a replacement with
the same settings is issued, ``key.revoked`` is queued for the account's webhooks and the audit
log records both. Nothing can half-happen: a revoked key without a replacement would break the
owner's service, and a replacement without the revocation would leave the attacker in.

The usage report is read from ``key_usage`` (requests per hour and source address, written by
the API processes every few seconds) and from the messages the key sent. Requests made in the
last flush interval before the compromise may be missing from it; the security log has them.
It is read after the containment commits, in a read of its own: counting a key's messages
reads the whole messages table (no index serves it, and one would cost every send), which
inside the write transaction held SQLite's write lock, and on the API's event loop the whole
gateway, for as long as the scan took (about 0.15 s per million messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from msgine.server.audit import Actor, record
from msgine.server.crypto import Vault
from msgine.server.errors import InvalidRequest
from msgine.server.keys import (
    SYSTEM,
    NewKey,
    get_key,
    issue_replacement,
    key_state,
    revoke_key,
)
from msgine.server.logging import security_event
from msgine.server.storage import Database, key_usage, messages

COMPROMISED = "compromised"


@dataclass(frozen=True)
class Compromise:
    """The outcome: the revoked key's row, its replacement (secret shown once), the report."""

    revoked: dict[str, Any]
    replacement: NewKey
    report: dict[str, Any]


@dataclass(frozen=True)
class Containment:
    """The committed part: the revoked key's row and its replacement."""

    revoked: dict[str, Any]
    replacement: NewKey


def compromise_key(
    conn: sa.Connection,
    vault: Vault,
    key_id: str,
    *,
    now: datetime,
    actor: Actor = SYSTEM,
    account_id: str | None = None,
) -> Containment:
    """Revoke ``key_id`` now, issue its replacement, raise ``key.revoked``, audit.

    Call inside one write transaction. Only an active key (also one in a rotation's grace
    period) can be compromised: a revoked or expired key no longer works.
    """
    old = get_key(conn, key_id, account_id)
    if key_state(old, now) != "active":
        raise InvalidRequest("Only an active key can be marked compromised; it no longer works.")
    new = issue_replacement(conn, vault, old, now=now, created_by=actor.name)
    new_id = new.record["id"]
    revoked = revoke_key(
        conn,
        key_id,
        vault=vault,
        now=now,
        reason=COMPROMISED,
        actor=actor,
        replaced_by=new_id,
    )
    record(
        conn,
        vault,
        actor,
        "key.compromise",
        now=now,
        target=key_id,
        account_id=old["account_id"],
        details={"replacementKeyId": new_id},
    )
    return Containment(revoked=revoked, replacement=new)


def compromise(
    db: Database, vault: Vault, key_id: str, *, now: datetime, actor: Actor = SYSTEM
) -> Compromise:
    """:func:`compromise_key` in its own transaction, the security alert, then the report."""
    contained = db.write(lambda conn: compromise_key(conn, vault, key_id, now=now, actor=actor))
    alert(contained, actor)
    return _reported(contained, db.read(lambda conn: usage_report(conn, contained.revoked)))


async def acompromise(
    db: Database,
    vault: Vault,
    key_id: str,
    *,
    now: datetime,
    actor: Actor,
    account_id: str | None = None,
) -> Compromise:
    """The same for the API: ``account_id`` confines it to the caller's own keys."""
    contained = await db.awrite(
        lambda conn: compromise_key(
            conn, vault, key_id, now=now, actor=actor, account_id=account_id
        )
    )
    alert(contained, actor)
    report = await db.aread(lambda conn: usage_report(conn, contained.revoked))
    return _reported(contained, report)


def _reported(contained: Containment, report: dict[str, Any]) -> Compromise:
    return Compromise(revoked=contained.revoked, replacement=contained.replacement, report=report)


def alert(result: Containment, actor: Actor) -> None:
    """The security log's record, written only once the containment is committed."""
    security_event(
        "key_compromised",
        key_id=result.revoked["id"],
        replacement_key_id=result.replacement.record["id"],
        account_id=result.revoked["account_id"],
        actor=actor.name,
        source_ip=actor.source_ip,
        request_id=actor.request_id,
    )


def usage_report(conn: sa.Connection, key: dict[str, Any]) -> dict[str, Any]:
    """What the key did: first and last use, requests by address and hour, messages sent."""
    rows = conn.execute(
        sa.select(
            key_usage.c.hour, key_usage.c.source_ip, key_usage.c.requests, key_usage.c.refused
        )
        .where(key_usage.c.key_id == key["id"])
        .order_by(key_usage.c.hour, key_usage.c.source_ip)
    ).all()
    buckets = [(hour, address, count) for hour, address, count, _ in rows if count]
    by_address: dict[str, int] = {}
    for _hour, address, count in buckets:
        by_address[address] = by_address.get(address, 0) + count
    refused: dict[str, int] = {}
    for _hour, address, _count, refusals in rows:
        if refusals:
            refused[address] = refused.get(address, 0) + refusals
    sent = _messages_sent(conn, key["id"])
    hours = [hour for hour, _address, _count in buckets]
    firsts = [t for t in (hours[0] if hours else None, sent["first"]) if t is not None]
    lasts = [t for t in (key["last_used_at"], sent["last"]) if t is not None]
    return {
        "keyId": key["id"],
        "account": key["account_id"],
        "mode": key["mode"],
        "createdAt": _iso(key["created_at"]),
        "revokedAt": _iso(key["revoked_at"]),
        "firstUsedAt": _iso(min(firsts)) if firsts else None,
        "lastUsedAt": _iso(max(lasts)) if lasts else None,
        "totalRequests": sum(by_address.values()),
        "requestsByAddress": [
            {"sourceIp": address, "requests": count}
            for address, count in sorted(by_address.items(), key=lambda item: -item[1])
        ],
        "requestsByHour": [
            {"hour": _iso(hour), "sourceIp": address, "requests": count}
            for hour, address, count in buckets
        ],
        # Requests with the key after it was revoked (refused): someone still holds it.
        "refusedAfterRevocation": sum(refused.values()),
        "refusedByAddress": [
            {"sourceIp": address, "requests": count}
            for address, count in sorted(refused.items(), key=lambda item: -item[1])
        ],
        "messagesSent": sent["count"],
        "firstMessageAt": _iso(sent["first"]),
        "lastMessageAt": _iso(sent["last"]),
    }


def _messages_sent(conn: sa.Connection, key_id: str) -> dict[str, Any]:
    count, first, last = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.min(messages.c.created_at),
            sa.func.max(messages.c.created_at),
        ).where(messages.c.key_id == key_id)
    ).one()
    return {"count": int(count), "first": first, "last": last}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
