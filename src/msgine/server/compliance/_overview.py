"""One account's compliance at a glance (the console's page): consents held, the newest consent
changes, the suppression list, and the policy that decides quiet hours and consent.

Counts come from the database; only the rows shown are decrypted, and their numbers leave here
in fields kept out of reprs, for the page to show masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa

from msgine.server.accounts import AccountPolicy, policy_of
from msgine.server.audit import Actor
from msgine.server.compliance import _suppressions
from msgine.server.compliance._consents import PURPOSES
from msgine.server.crypto import Vault
from msgine.server.storage import consents

RECENT: Final = 20


@dataclass(frozen=True)
class ConsentLine:
    id: str
    purpose: str
    granted_at: datetime
    withdrawn_at: datetime | None
    withdrawn_reason: str | None
    number: str | None = field(repr=False)

    @property
    def active(self) -> bool:
        return self.withdrawn_at is None


@dataclass(frozen=True)
class SuppressionLine:
    #: Names the entry for a reveal (see ``suppression_ref``).
    ref: str
    reason: str
    source: str
    created_at: datetime
    number: str | None = field(repr=False)


@dataclass(frozen=True)
class ComplianceOverview:
    #: Numbers with an open consent, per purpose.
    active_consents: dict[str, int]
    recent_consents: list[ConsentLine]
    suppressions: list[SuppressionLine]
    suppressed_total: int
    #: The account's policy (quiet hours, consent for marketing, retention...).
    policy: AccountPolicy


def compliance_overview(
    conn: sa.Connection,
    vault: Vault,
    account_id: str,
    mode: str,
    *,
    limit: int = RECENT,
) -> ComplianceOverview:
    mine = (consents.c.account_id == account_id, consents.c.mode == mode)
    counted = conn.execute(
        sa.select(consents.c.purpose, sa.func.count(sa.distinct(consents.c.phone_index)))
        .where(*mine, consents.c.withdrawn_at.is_(None))
        .group_by(consents.c.purpose)
    ).all()
    active = dict.fromkeys(PURPOSES, 0) | {str(p): int(n) for p, n in counted}
    consent_rows = conn.execute(
        sa.select(consents)
        .where(*mine)
        .order_by(consents.c.granted_at.desc(), consents.c.id.desc())
        .limit(limit)
    ).mappings()
    recent = [
        ConsentLine(
            id=r["id"],
            purpose=r["purpose"],
            granted_at=r["granted_at"],
            withdrawn_at=r["withdrawn_at"],
            withdrawn_reason=r["withdrawn_reason"],
            number=_consent_phone(vault, r["id"], r["phone"]),
        )
        for r in consent_rows
    ]
    suppressed, total = _suppressions.newest(conn, account_id, mode, limit=limit)
    return ComplianceOverview(
        active_consents=active,
        recent_consents=recent,
        suppressions=[_suppression(vault, row) for row in suppressed],
        suppressed_total=total,
        policy=policy_of(conn, account_id),
    )


def _suppression(vault: Vault, row: Any) -> SuppressionLine:
    shown = _suppressions.view(vault, row)
    return SuppressionLine(
        ref=suppression_ref(row["mode"], row["phone_index"]),
        reason=shown["reason"],
        source=shown["source"],
        created_at=row["created_at"],
        number=shown["phone"],
    )


def consent_number(
    conn: sa.Connection, vault: Vault, account_id: str, consent_id: str
) -> str | None:
    """The number of one of the account's consent records (for an audited reveal)."""
    row = conn.execute(
        sa.select(consents.c.phone).where(
            consents.c.id == consent_id, consents.c.account_id == account_id
        )
    ).first()
    return None if row is None else _consent_phone(vault, consent_id, row[0])


def _consent_phone(vault: Vault, consent_id: str, blob: bytes | None) -> str | None:
    if blob is None:
        return None
    return vault.decrypt_str(blob, table="consents", column="phone", row_id=consent_id)


def suppression_ref(mode: str, phone_index: str) -> str:
    """How a page names a suppression (its key within the account) for a reveal."""
    return f"{mode}:{phone_index}"


def remove_suppression(
    conn: sa.Connection, vault: Vault, actor: Actor, *, account_id: str, ref: str, now: datetime
) -> None:
    """Take the suppression a page named (``suppression_ref``) off the list, audited."""
    mode, _, phone_index = ref.partition(":")
    _suppressions.remove(
        conn, vault, actor, account_id=account_id, mode=mode, phone_index=phone_index, now=now
    )


def suppressed_number(conn: sa.Connection, vault: Vault, account_id: str, ref: str) -> str | None:
    """The number of one of the account's suppressions, named by ``suppression_ref``."""
    mode, _, phone_index = ref.partition(":")
    found = _suppressions.find(conn, vault, account_id, mode, phone_index)
    return None if found is None else found["phone"]
