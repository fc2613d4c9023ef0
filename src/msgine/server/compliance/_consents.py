"""The consent registry: who agreed to which messages, how, when, and when they withdrew.

Each mode has its own registry: consents recorded with a test key count only for test sends.
Rows are never overwritten: a new grant for a purpose closes the previous one ("superseded") and
a withdrawal stamps the open one, so the whole history stays as evidence. Numbers and evidence
are stored encrypted; rows are found by the number's blind index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from msgine.server._ids import new_id
from msgine.server._jsonbounds import bounded_json
from msgine.server.audit import Actor, record
from msgine.server.crypto import Vault
from msgine.server.errors import NotFound
from msgine.server.events import iso
from msgine.server.storage import consents

Purpose = Literal["marketing", "transactional"]
#: Both worlds, for the operator's requests (privacy export and erasure from the CLI).
MODES: tuple[str, ...] = ("live", "test")
PURPOSES: tuple[Purpose, ...] = ("marketing", "transactional")
MAX_EVIDENCE_BYTES = 4000
#: Containers deep an evidence object may nest ({"form": {"fields": [...]}} is 3).
MAX_EVIDENCE_DEPTH = 10


def _encrypt(vault: Vault, value: str, column: str, consent_id: str) -> bytes:
    return vault.encrypt_str(value, table="consents", column=column, row_id=consent_id)


def _evidence_blob(vault: Vault, evidence: Any, consent_id: str) -> bytes | None:
    if evidence is None:
        return None
    encoded = bounded_json(
        evidence, field="evidence", max_depth=MAX_EVIDENCE_DEPTH, max_bytes=MAX_EVIDENCE_BYTES
    )
    return _encrypt(vault, encoded, "evidence", consent_id)


def _close_open(
    conn: sa.Connection,
    account_id: str,
    mode: str,
    phone_index: str,
    purposes: tuple[str, ...],
    now: datetime,
    reason: str,
) -> list[str]:
    where = (
        consents.c.account_id == account_id,
        consents.c.mode == mode,
        consents.c.phone_index == phone_index,
        consents.c.purpose.in_(purposes),
        consents.c.withdrawn_at.is_(None),
    )
    ids = list(conn.execute(sa.select(consents.c.id).where(*where)).scalars())
    if ids:
        conn.execute(
            sa.update(consents)
            .where(consents.c.id.in_(ids))
            .values(withdrawn_at=now, withdrawn_reason=reason)
        )
    return ids


def grant(
    conn: sa.Connection,
    vault: Vault,
    *,
    account_id: str,
    mode: str,
    phone: str,
    phone_index: str,
    purpose: Purpose,
    source: str,
    evidence: Any,
    now: datetime,
    actor: Actor,
) -> str:
    """Record a consent; an open consent for the same purpose is closed as superseded."""
    _close_open(conn, account_id, mode, phone_index, (purpose,), now, "superseded")
    consent_id = new_id("cns")
    conn.execute(
        sa.insert(consents).values(
            id=consent_id,
            account_id=account_id,
            mode=mode,
            phone=_encrypt(vault, phone, "phone", consent_id),
            phone_index=phone_index,
            purpose=purpose,
            source=_encrypt(vault, source, "source", consent_id),
            evidence=_evidence_blob(vault, evidence, consent_id),
            granted_at=now,
        )
    )
    record(
        conn,
        vault,
        actor,
        "consent.granted",
        now=now,
        target=consent_id,
        account_id=account_id,
        details={"purpose": purpose},
    )
    return consent_id


def withdraw(
    conn: sa.Connection,
    vault: Vault,
    *,
    account_id: str,
    mode: str,
    phone_index: str,
    purpose: Purpose | None,
    now: datetime,
    actor: Actor,
) -> list[str]:
    """Withdraw the open consent for ``purpose`` (every purpose when None)."""
    purposes = PURPOSES if purpose is None else (purpose,)
    closed = _close_open(conn, account_id, mode, phone_index, purposes, now, "withdrawn")
    if not closed:
        raise NotFound("No active consent for this number.")
    for consent_id in closed:
        record(
            conn,
            vault,
            actor,
            "consent.withdrawn",
            now=now,
            target=consent_id,
            account_id=account_id,
        )
    return closed


def _view(vault: Vault, row: Any) -> dict[str, Any]:
    evidence = None
    if row["evidence"] is not None:
        evidence = json.loads(
            vault.decrypt_str(
                row["evidence"], table="consents", column="evidence", row_id=row["id"]
            )
        )
    return {
        "id": row["id"],
        "purpose": row["purpose"],
        "source": vault.decrypt_str(
            row["source"], table="consents", column="source", row_id=row["id"]
        ),
        "evidence": evidence,
        "grantedAt": iso(row["granted_at"]),
        "withdrawnAt": iso(row["withdrawn_at"]) if row["withdrawn_at"] else None,
        "withdrawnReason": row["withdrawn_reason"],
        "active": row["withdrawn_at"] is None,
    }


def history(
    conn: sa.Connection,
    vault: Vault,
    account_id: str,
    phone_indexes: list[str],
    modes: Sequence[str] = MODES,
) -> list[dict[str, Any]]:
    """Every consent record for the number in ``modes``, newest first (an open one before one
    it replaced at the same instant)."""
    rows = conn.execute(
        sa.select(consents).where(
            consents.c.account_id == account_id,
            consents.c.mode.in_(list(modes)),
            consents.c.phone_index.in_(phone_indexes),
        )
    ).mappings()
    ordered = sorted(
        rows, key=lambda r: (r["granted_at"], r["withdrawn_at"] is None, r["id"]), reverse=True
    )
    return [_view(vault, r) for r in ordered]


def summary(
    conn: sa.Connection, vault: Vault, account_id: str, mode: str, phone: str, phone_index: str
) -> dict[str, Any]:
    """What the API shows for a number in one mode: whether each purpose is consented, and the
    history."""
    items = history(conn, vault, account_id, [phone_index], (mode,))
    return {
        "phone": phone,
        "active": {p: any(i["active"] and i["purpose"] == p for i in items) for p in PURPOSES},
        "consents": items,
    }
