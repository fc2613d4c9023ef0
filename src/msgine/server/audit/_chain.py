"""The audit log's hash chain: canonical form, link hashes and verification (pure).

Every entry's hash covers its own fields, its sequence number and the previous entry's hash, so
editing, deleting or reordering any entry breaks the chain from that point on. Two limits decide
how the chain is used (see docs/audit-and-logging.md):

* An unkeyed SHA-256 chain only catches someone who edits a row without recomputing every later
  hash; anyone with write access to the table can rebuild a consistent chain. With ``key`` (derived
  from the master key by :func:`derive_chain_key`) the links are HMAC-SHA256, which nobody without
  the master key can recompute.
* Deleting the newest entries leaves a shorter, still valid chain. Only a head recorded somewhere
  else (a :class:`ChainAnchor`, e.g. written to the security log) reveals such truncation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

GENESIS_HASH = "0" * 64
#: Bumped if the canonical form ever changes, so old entries stay verifiable.
CANONICAL_VERSION = 1

ProblemReason = Literal[
    "hash_mismatch", "prev_hash_mismatch", "sequence_gap", "sequence_order", "truncated"
]


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    id: str
    occurred_at: datetime
    actor: str
    action: str
    target: str | None
    source_ip: str | None
    request_id: str | None
    outcome: str
    details: Mapping[str, Any] = field(default_factory=dict)
    account_id: str | None = None


@dataclass(frozen=True)
class ChainProblem:
    """The first entry at which the chain breaks; ``id`` is empty when that entry is missing."""

    seq: int
    id: str
    reason: ProblemReason


@dataclass(frozen=True)
class ChainAnchor:
    """A chain head (sequence number and hash) recorded outside the audit table."""

    seq: int
    hash: str


def _utc_iso(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(entry: AuditEntry, prev_hash: str) -> bytes:
    """Sorted-key compact JSON (UTF-8) of the entry plus its predecessor's hash.

    ``details`` must be JSON data (str, int, float, bool, None, lists, string-keyed mappings);
    anything else raises ``TypeError`` rather than hashing an unstable ``repr``.
    """
    document = {
        "v": CANONICAL_VERSION,
        "seq": entry.seq,
        "id": entry.id,
        "occurred_at": _utc_iso(entry.occurred_at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "source_ip": entry.source_ip,
        "request_id": entry.request_id,
        "outcome": entry.outcome,
        "details": dict(entry.details),
        "account_id": entry.account_id,
        "prev_hash": prev_hash,
    }
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def entry_hash(entry: AuditEntry, prev_hash: str, key: bytes | None = None) -> str:
    """Hex SHA-256 of the canonical form, or HMAC-SHA256 when ``key`` is given."""
    data = canonical_bytes(entry, prev_hash)
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def verify_chain(
    rows: Iterable[tuple[AuditEntry, str, str]],
    *,
    key: bytes | None = None,
    anchor: ChainAnchor | None = None,
    start: ChainAnchor | None = None,
) -> ChainProblem | None:
    """The first problem in ``rows`` (ascending seq; each ``(entry, stored_prev_hash,
    stored_hash)``), or None when the chain is intact.

    ``start`` verifies a chain that legitimately begins later (the head before the first row);
    by default the first row must be seq 1 following :data:`GENESIS_HASH`. ``anchor`` is a head
    recorded elsewhere: the chain must reach it with the same hash, which detects truncation.
    """
    expected_seq = 1 if start is None else start.seq + 1
    expected_prev = GENESIS_HASH if start is None else start.hash
    last_seq = expected_seq - 1
    for entry, stored_prev, stored_hash in rows:
        if entry.seq <= last_seq:
            return ChainProblem(entry.seq, entry.id, "sequence_order")
        if entry.seq != expected_seq:
            return ChainProblem(entry.seq, entry.id, "sequence_gap")
        if stored_prev != expected_prev:
            return ChainProblem(entry.seq, entry.id, "prev_hash_mismatch")
        if entry_hash(entry, stored_prev, key) != stored_hash:
            return ChainProblem(entry.seq, entry.id, "hash_mismatch")
        if anchor is not None and entry.seq == anchor.seq and stored_hash != anchor.hash:
            return ChainProblem(entry.seq, entry.id, "hash_mismatch")
        last_seq, expected_seq, expected_prev = entry.seq, entry.seq + 1, stored_hash
    if anchor is not None and last_seq < anchor.seq:
        return ChainProblem(last_seq + 1, "", "truncated")
    return None
