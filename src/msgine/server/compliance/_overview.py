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
from msgine.server.compliance import _suppressions
from msgine.server.compliance._consents import PURPOSES
from msgine.server.crypto import Vault
from msgine.server.storage._tables import consents

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
class ComplianceOverview:
    #: Numbers with an open consent, per purpose.
    active_consents: dict[str, int]
    recent_consents: list[ConsentLine]
    #: The newest suppressions as the API shows them (``phone`` plaintext: mask it), and the total.
    suppressions: list[dict[str, Any]] = field(repr=False)
    suppressed_total: int
    #: The account's policy (quiet hours, consent for marketing, retention...).
    policy: AccountPolicy


def compliance_overview(
    conn: sa.Connection,
    vault: Vault,
    account_id: str,
    mode: str,
    *,
    suppressions_page: int = 1,
    limit: int = RECENT,
) -> ComplianceOverview:
    mine = (consents.c.account_id == account_id, consents.c.mode == mode)
    counted = conn.execute(
        sa.select(consents.c.purpose, sa.func.count(sa.distinct(consents.c.phone_index)))
        .where(*mine, consents.c.withdrawn_at.is_(None))
        .group_by(consents.c.purpose)
    ).all()
    active = dict.fromkeys(PURPOSES, 0) | {str(p): int(n) for p, n in counted}
    rows = conn.execute(
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
            number=(
                None
                if r["phone"] is None
                else vault.decrypt_str(r["phone"], table="consents", column="phone", row_id=r["id"])
            ),
        )
        for r in rows
    ]
    page = _suppressions.list_page(
        conn, vault, account_id, mode, page=suppressions_page, limit=limit
    )
    return ComplianceOverview(
        active_consents=active,
        recent_consents=recent,
        suppressions=page["suppressions"],
        suppressed_total=page["total"],
        policy=policy_of(conn, account_id),
    )
