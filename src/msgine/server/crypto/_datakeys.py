"""Data keys in the database, wrapped by the master key: creation, loading and re-wrapping."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa

from msgine.server.crypto._keyring import MasterKeyRing, key_id
from msgine.server.crypto._vault import PURPOSES, Vault, WrappedKey, unwrap, wrap
from msgine.server.storage import Database, data_keys

# Fixed ids for the first key of each purpose, so processes starting together agree.
INITIAL_IDS = {purpose: number for number, purpose in enumerate(PURPOSES, start=1)}


def _rows(conn: sa.Connection) -> list[WrappedKey]:
    rows = conn.execute(sa.select(data_keys)).mappings()
    return [
        WrappedKey(r["id"], r["purpose"], r["master_kid"], r["wrapped"], r["active"]) for r in rows
    ]


def _ensure(conn: sa.Connection, ring: MasterKeyRing) -> None:
    existing = {row.purpose for row in _rows(conn)}
    for purpose, number in INITIAL_IDS.items():
        if purpose in existing:
            continue
        conn.execute(
            sa.insert(data_keys).values(
                id=number,
                purpose=purpose,
                master_kid=ring.primary_id,
                wrapped=wrap(ring.primary, number, purpose, secrets.token_bytes(32)),
                active=True,
                created_at=datetime.now(UTC),
            )
        )


def open_vault(conn: sa.Connection, ring: MasterKeyRing) -> Vault:
    """The vault inside an open transaction (a migration that re-encrypts rows uses it)."""
    _ensure(conn, ring)
    return Vault(ring, _rows(conn))


def load_vault(db: Database, ring: MasterKeyRing) -> Vault:
    """Create missing data keys (first start), then unwrap all of them."""
    db.write(lambda conn: _ensure(conn, ring))
    return Vault(ring, db.read(_rows))


def rewrap_all(conn: sa.Connection, old: MasterKeyRing, new_primary: bytes) -> int:
    """Re-wrap every data key with ``new_primary``: master-key rotation without touching data."""
    count = 0
    for wk in _rows(conn):
        master = old.by_id(wk.master_kid)
        if master is None:
            raise ValueError(f"data key {wk.id} is wrapped by an unknown master key")
        key = unwrap(master, wk.id, wk.purpose, wk.wrapped)
        conn.execute(
            sa.update(data_keys)
            .where(data_keys.c.id == wk.id)
            .values(
                master_kid=key_id(new_primary), wrapped=wrap(new_primary, wk.id, wk.purpose, key)
            )
        )
        count += 1
    return count
