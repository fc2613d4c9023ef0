"""Master-key rotation without downtime.

Only data keys are wrapped by the master key, so a rotation re-wraps a handful of rows and never
touches data. The order makes every moment safe:

1. the new key is written to the key file *in front of* the old ones, so a process starting now
   can unwrap data keys whichever key wraps them;
2. all data keys are re-wrapped with the new key in one transaction, which also verifies that the
   new key alone opens them and appends the audit entry (all or nothing);
3. only then, with ``retire_old``, the old keys are removed from the file.

Running processes hold their unwrapped data keys in memory and notice nothing. When the master
key comes from ``MSGINE_MASTER_KEY``, the new key ring goes to a new file, because an environment
variable cannot be changed from here; the operator then switches the configuration to that file.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from msgine.server.audit import Actor, record
from msgine.server.config import Settings
from msgine.server.crypto._datakeys import _rows, rewrap_all
from msgine.server.crypto._keyring import (
    MasterKeyError,
    MasterKeyRing,
    generate_master_key,
    key_id,
    load_master_keys,
    write_key_file,
)
from msgine.server.crypto._vault import Vault
from msgine.server.logging import security_event
from msgine.server.storage import Database


@dataclass(frozen=True)
class RotationResult:
    """Public names of the keys involved (never the keys) and where the new ring was written."""

    new_key_id: str
    old_key_ids: tuple[str, ...]
    key_file: Path
    data_keys: int
    retired_old: bool
    from_environment: bool


def key_file_for_rotation(settings: Settings, new_key_file: Path | None) -> Path:
    """Where the new key ring goes: the configured key file, or ``new_key_file`` when the
    master key comes from the environment (which this command cannot change)."""
    if settings.master_key is not None:
        if new_key_file is None:
            raise MasterKeyError(
                "the master key comes from MSGINE_MASTER_KEY; pass --new-key-file PATH, then "
                "set MSGINE_MASTER_KEY_FILE=PATH and unset MSGINE_MASTER_KEY"
            )
        if new_key_file.exists():
            raise MasterKeyError(f"{new_key_file} already exists; choose a new path")
        return new_key_file
    configured = settings.resolved_master_key_file
    if new_key_file is not None and new_key_file.resolve() != configured.resolve():
        raise MasterKeyError(
            f"the master key comes from {configured}; the new key is added there "
            "(--new-key-file is only for MSGINE_MASTER_KEY)"
        )
    return configured


def rotate_master_key(
    settings: Settings,
    db: Database,
    vault: Vault,
    *,
    now: datetime,
    actor: Actor,
    new_key_file: Path | None = None,
    retire_old: bool = False,
) -> RotationResult:
    """Generate a new master key, put it first in the key ring, re-wrap every data key."""
    target = key_file_for_rotation(settings, new_key_file)
    old = load_master_keys(settings, create=False)
    new_b64 = generate_master_key()
    new = base64.b64decode(new_b64)
    write_key_file(target, [new_b64, *_encoded(old)])
    result = RotationResult(
        new_key_id=key_id(new),
        old_key_ids=tuple(key_id(k) for k in old.keys),
        key_file=target,
        data_keys=0,
        retired_old=retire_old,
        from_environment=settings.master_key is not None,
    )
    count = db.write(lambda conn: _rewrap(conn, vault, old, new, now, actor, result))
    if retire_old:
        write_key_file(target, [new_b64])
    security_event(
        "master_key_rotated",
        new_key_id=result.new_key_id,
        old_key_ids=list(result.old_key_ids),
        data_keys=count,
        retired_old=retire_old,
        actor=actor.name,
    )
    return RotationResult(**{**result.__dict__, "data_keys": count})


def _rewrap(
    conn: sa.Connection,
    vault: Vault,
    old: MasterKeyRing,
    new: bytes,
    now: datetime,
    actor: Actor,
    result: RotationResult,
) -> int:
    count = rewrap_all(conn, old, new)
    Vault(
        MasterKeyRing((new,)), _rows(conn)
    )  # raises (and rolls back) unless the new key alone opens all
    record(
        conn,
        vault,
        actor,
        "master_key.rotate",
        now=now,
        target=result.new_key_id,
        details={
            "newKeyId": result.new_key_id,
            "oldKeyIds": list(result.old_key_ids),
            "dataKeys": count,
            "retiredOld": result.retired_old,
        },
    )
    return count


def _encoded(ring: MasterKeyRing) -> list[str]:
    return [base64.b64encode(key).decode("ascii") for key in ring.keys]
