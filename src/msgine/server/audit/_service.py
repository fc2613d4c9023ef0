"""The audit trail in the database: append (hash-chained, keyed), list and verify.

Appends are serialised (SQLite has one writer; PostgreSQL takes a transaction-scoped advisory
lock), so sequence numbers have no gaps and every entry links to the one before it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from msgine.server._ids import new_id
from msgine.server.audit._anchor import read_head
from msgine.server.audit._chain import (
    GENESIS_HASH,
    AuditEntry,
    ChainAnchor,
    ChainProblem,
    entry_hash,
    verify_chain,
)
from msgine.server.storage import api_keys, audit_log

if TYPE_CHECKING:  # a type only: crypto's key rotation records to this audit trail
    from msgine.server.crypto import Vault

_PG_AUDIT_LOCK = 0x61756469


@dataclass(frozen=True)
class Actor:
    """Who did it: an API key id, or ``cli:<user>`` for the command line."""

    name: str
    source_ip: str | None = None
    request_id: str | None = None


def record(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    action: str,
    *,
    now: datetime,
    target: str | None = None,
    outcome: str = "success",
    account_id: str | None = None,
    details: Mapping[Any, Any] | None = None,
) -> str:
    """Append one entry in the caller's transaction. ``details`` must hold no secret or
    personal data: name things by id or blind index, never by value."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
    last = conn.execute(
        sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    entry = AuditEntry(
        seq=seq,
        id=new_id("aud"),
        occurred_at=now,
        actor=actor.name,
        action=action,
        target=target,
        source_ip=actor.source_ip,
        request_id=actor.request_id,
        outcome=outcome,
        details=dict(details or {}),
        account_id=account_id,
    )
    digest = entry_hash(entry, prev, vault.audit_key())
    conn.execute(
        sa.insert(audit_log).values(
            seq=seq,
            id=entry.id,
            occurred_at=now,
            account_id=account_id,
            actor=entry.actor,
            action=action,
            target=target,
            source_ip=entry.source_ip,
            request_id=entry.request_id,
            outcome=outcome,
            details=entry.details,
            prev_hash=prev,
            hash=digest,
        )
    )
    return entry.id


def _entry(row: Mapping[Any, Any]) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        id=row["id"],
        occurred_at=row["occurred_at"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        source_ip=row["source_ip"],
        request_id=row["request_id"],
        outcome=row["outcome"],
        details=row["details"],
        account_id=row["account_id"],
    )


def _rows(conn: sa.Connection) -> Iterator[tuple[AuditEntry, str, str]]:
    result = conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).mappings()
    for row in result:
        yield _entry(row), row["prev_hash"], row["hash"]


def verify(
    conn: sa.Connection, vault: Vault, anchor: ChainAnchor | None = None
) -> ChainProblem | None:
    """The first problem in the whole chain; with ``anchor`` (a head published earlier), a
    chain that ends before it, or differs at it, is a problem too."""
    return verify_chain(_rows(conn), key=vault.audit_key(), anchor=anchor)


@dataclass(frozen=True)
class ChainState:
    """The whole chain checked now: intact or the first problem, how many entries were
    checked, the head reached, and whether a head published outside the database was given
    (without one, deleting the newest entries goes unnoticed)."""

    checked: int
    head: ChainAnchor | None
    problem: ChainProblem | None
    anchored: bool

    @property
    def intact(self) -> bool:
        return self.problem is None


def chain_state(conn: sa.Connection, vault: Vault, anchor: ChainAnchor | None = None) -> ChainState:
    """Verify the chain (as ``msgine audit verify`` does) and say what was verified."""
    checked = 0

    def counted() -> Iterator[tuple[AuditEntry, str, str]]:
        nonlocal checked
        for row in _rows(conn):
            yield row
            checked += 1  # reached only once the verifier accepted the row and asks for more

    problem = verify_chain(counted(), key=vault.audit_key(), anchor=anchor)
    return ChainState(
        checked=checked,
        head=read_head(conn),
        problem=problem,
        anchored=anchor is not None,
    )


def view(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "id": row["id"],
        "occurredAt": row["occurred_at"].isoformat().replace("+00:00", "Z"),
        "actor": row["actor"],
        "action": row["action"],
        "target": row["target"],
        "sourceIp": row["source_ip"],
        "requestId": row["request_id"],
        "outcome": row["outcome"],
        "details": row["details"],
        "hash": row["hash"],
    }


def list_entries(
    conn: sa.Connection,
    account_id: str,
    *,
    limit: int,
    before_seq: int | None = None,
    mode: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first. With ``mode``, what a key of that mode may see: not the entries made by
    the account's keys of the other mode (the operator's and the gateway's own are shown)."""
    query = sa.select(audit_log).where(audit_log.c.account_id == account_id)
    if mode is not None:
        other_keys = sa.select(api_keys.c.id).where(
            api_keys.c.account_id == account_id, api_keys.c.mode != mode
        )
        query = query.where(audit_log.c.actor.not_in(other_keys))
    if before_seq is not None:
        query = query.where(audit_log.c.seq < before_seq)
    rows = conn.execute(query.order_by(audit_log.c.seq.desc()).limit(limit)).mappings()
    return [view(r) for r in rows]
