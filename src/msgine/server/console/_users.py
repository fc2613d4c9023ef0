"""Console users: create, find, disable, reset two-factor, change password, enrol TOTP.

Each change is audited in the same transaction as the write. Secrets are never returned by a
view: the TOTP secret is sealed with the vault (bound to the user's row), recovery codes are
kept as keyed hashes, the password as an argon2id hash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from msgine.server._ids import new_id
from msgine.server.audit import Actor, record
from msgine.server.crypto import Vault
from msgine.server.errors import InvalidRequest, NotFound
from msgine.server.storage import console_sessions, console_users

from . import _credentials as cred
from ._roles import Role, parse_role

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{1,63}")


@dataclass(frozen=True)
class NewUser:
    """A created user; ``password`` is set when the gateway chose a one-time password."""

    view: dict[str, Any]
    password: str | None = field(default=None, repr=False)


def normal_email(email: str) -> str:
    text = email.strip().lower()
    if len(text) > 254 or not _EMAIL.fullmatch(text):
        raise InvalidRequest("Give an e-mail address as the user's sign-in name.")
    return text


def create_user(
    conn: sa.Connection,
    vault: Vault,
    *,
    account_id: str,
    email: str,
    role: str,
    now: datetime,
    actor: Actor,
    password: str | None = None,
) -> NewUser:
    """Without ``password`` a one-time one is made, which the user replaces at first sign-in."""
    address = normal_email(email)
    chosen_role: Role = _role(role)
    one_time = password is None
    secret = cred.new_password() if password is None else password
    problem = cred.password_problem(secret, address)
    if problem:
        raise InvalidRequest(problem, details={"field": "password"})
    if conn.execute(sa.select(console_users.c.id).where(console_users.c.email == address)).first():
        raise InvalidRequest("A console user with this e-mail address exists already.")
    user_id = new_id("usr")
    conn.execute(
        sa.insert(console_users).values(
            id=user_id,
            account_id=account_id,
            email=address,
            role=chosen_role,
            password_hash=cred.hash_password(secret),
            password_must_change=one_time,
            recovery_codes=[],
            created_at=now,
            created_by=actor.name,
        )
    )
    _audit(conn, vault, actor, "console.user_create", user_id, account_id, now, role=chosen_role)
    return NewUser(view(get_user(conn, user_id)), secret if one_time else None)


def _role(text: str) -> Role:
    try:
        return parse_role(text)
    except ValueError as exc:
        raise InvalidRequest(str(exc), details={"field": "role"}) from None


def get_user(conn: sa.Connection, user_id: str) -> dict[str, Any]:
    row = conn.execute(sa.select(console_users).where(console_users.c.id == user_id)).first()
    if row is None:
        raise NotFound("Console user not found.")
    return dict(row._mapping)


def find_user(conn: sa.Connection, id_or_email: str) -> dict[str, Any]:
    """A user by id (``usr_...``) or e-mail address."""
    column = console_users.c.id if id_or_email.startswith("usr_") else console_users.c.email
    value = id_or_email if id_or_email.startswith("usr_") else id_or_email.strip().lower()
    row = conn.execute(sa.select(console_users).where(column == value)).first()
    if row is None:
        raise NotFound("Console user not found.")
    return dict(row._mapping)


def user_by_email(conn: sa.Connection, email: str) -> dict[str, Any] | None:
    row = conn.execute(
        sa.select(console_users).where(console_users.c.email == email.strip().lower()[:254])
    ).first()
    return dict(row._mapping) if row else None


def list_users(conn: sa.Connection, account_id: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(console_users).order_by(console_users.c.created_at)
    if account_id is not None:
        query = query.where(console_users.c.account_id == account_id)
    return [view(dict(r._mapping)) for r in conn.execute(query)]


def view(user: dict[str, Any]) -> dict[str, Any]:
    """What listings show: never a hash or a secret."""
    return {
        "id": user["id"],
        "account": user["account_id"],
        "email": user["email"],
        "role": user["role"],
        "twoFactor": user["totp_enabled_at"] is not None,
        "passwordMustChange": user["password_must_change"],
        "disabled": user["disabled_at"] is not None,
        "createdAt": _iso(user["created_at"]),
        "lastSignInAt": _iso(user["last_sign_in_at"]),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def disable_user(
    conn: sa.Connection, vault: Vault, id_or_email: str, *, now: datetime, actor: Actor
) -> dict[str, Any]:
    """Disable and end every session of the user at once."""
    user = find_user(conn, id_or_email)
    if user["disabled_at"] is None:
        _lock_down(conn, vault, actor, user, "console.user_disable", now, disabled_at=now)
    return view(get_user(conn, user["id"]))


def reset_two_factor(
    conn: sa.Connection, vault: Vault, id_or_email: str, *, now: datetime, actor: Actor
) -> dict[str, Any]:
    """Forget the TOTP secret and recovery codes (the user enrols again at next sign-in) and
    end every session, so no session outlives the factor it was opened with."""
    user = find_user(conn, id_or_email)
    _lock_down(
        conn,
        vault,
        actor,
        user,
        "console.user_reset_2fa",
        now,
        totp_secret=None,
        totp_enabled_at=None,
        totp_last_step=None,
        recovery_codes=[],
    )
    return view(get_user(conn, user["id"]))


def _lock_down(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    user: dict[str, Any],
    action: str,
    now: datetime,
    **values: Any,
) -> None:
    """Change the user, end all their sessions, audit both in this transaction."""
    _update(conn, user["id"], **values)
    ended = end_user_sessions(conn, user["id"], now)
    _audit(conn, vault, actor, action, user["id"], user["account_id"], now, sessionsEnded=ended)


def end_user_sessions(
    conn: sa.Connection, user_id: str, now: datetime, *, keep: str | None = None
) -> int:
    """End the user's open sessions (but ``keep``); the number ended."""
    query = sa.update(console_sessions).where(
        console_sessions.c.user_id == user_id, console_sessions.c.ended_at.is_(None)
    )
    if keep is not None:
        query = query.where(console_sessions.c.id != keep)
    return int(conn.execute(query.values(ended_at=now)).rowcount or 0)


def set_password(
    conn: sa.Connection,
    vault: Vault,
    user: dict[str, Any],
    password: str,
    *,
    now: datetime,
    actor: Actor,
) -> None:
    problem = cred.password_problem(password, user["email"])
    if problem:
        raise InvalidRequest(problem, details={"field": "password"})
    if cred.verify_password(user["password_hash"], password):
        raise InvalidRequest(
            "Choose a password other than the one-time password.", details={"field": "password"}
        )
    _update(
        conn, user["id"], password_hash=cred.hash_password(password), password_must_change=False
    )
    _audit(conn, vault, actor, "console.password_change", user["id"], user["account_id"], now)


def touch_sign_in(conn: sa.Connection, user_id: str, now: datetime) -> None:
    _update(conn, user_id, last_sign_in_at=now)


# --- two-factor ------------------------------------------------------------------------------


def _seal(vault: Vault, user_id: str, secret: str) -> bytes:
    return vault.encrypt_str(secret, table="console_users", column="totp_secret", row_id=user_id)


def totp_secret(vault: Vault, user: dict[str, Any]) -> str | None:
    blob = user["totp_secret"]
    if blob is None:
        return None
    return vault.decrypt_str(blob, table="console_users", column="totp_secret", row_id=user["id"])


def pending_secret(conn: sa.Connection, vault: Vault, user: dict[str, Any]) -> str:
    """The secret being enrolled: made (and sealed) on first ask, the same on a reload."""
    if user["totp_enabled_at"] is not None:
        raise InvalidRequest("Two-factor authentication is already set up.")
    existing = totp_secret(vault, user)
    if existing is not None:
        return existing
    secret = cred.new_totp_secret()
    _update(conn, user["id"], totp_secret=_seal(vault, user["id"], secret))
    return secret


def finish_enrolment(
    conn: sa.Connection,
    vault: Vault,
    user: dict[str, Any],
    code: str,
    *,
    now: datetime,
    actor: Actor,
) -> list[str] | None:
    """With a valid code for the pending secret: two-factor on, and the recovery codes (to be
    shown once). None when the code is wrong."""
    secret = totp_secret(vault, user)
    if secret is None or user["totp_enabled_at"] is not None:
        return None
    step = cred.totp_step(secret, code, now, None)
    if step is None:
        return None
    codes = cred.new_recovery_codes()
    _update(
        conn,
        user["id"],
        totp_enabled_at=now,
        totp_last_step=step,
        recovery_codes=[_code_hash(vault, user["id"], c) for c in codes],
    )
    _audit(conn, vault, actor, "console.totp_enrol", user["id"], user["account_id"], now)
    return codes


def check_second_factor(
    conn: sa.Connection, vault: Vault, user: dict[str, Any], code: str, *, now: datetime
) -> str | None:
    """``"totp"`` or ``"recovery"`` when ``code`` is a fresh TOTP code or an unused recovery
    code (which is then used up); None otherwise."""
    secret = totp_secret(vault, user)
    if secret is None or user["totp_enabled_at"] is None:
        return None
    step = cred.totp_step(secret, code, now, user["totp_last_step"])
    if step is not None:
        # Conditional on the step read: of two concurrent uses of one code, one wins.
        done = conn.execute(
            sa.update(console_users)
            .where(
                console_users.c.id == user["id"],
                sa.or_(
                    console_users.c.totp_last_step.is_(None), console_users.c.totp_last_step < step
                ),
            )
            .values(totp_last_step=step)
        )
        return "totp" if done.rowcount else None
    digest = _code_hash(vault, user["id"], cred.normal_recovery_code(code))
    stored: list[str] = list(user["recovery_codes"] or [])
    if digest not in stored:
        return None
    stored.remove(digest)
    _update(conn, user["id"], recovery_codes=stored)
    return "recovery"


def _code_hash(vault: Vault, user_id: str, code: str) -> str:
    return vault.key_hash(f"console-recovery\x00{user_id}\x00{code}")


# --- shared ---------------------------------------------------------------------------------


def _update(conn: sa.Connection, user_id: str, **values: Any) -> None:
    conn.execute(sa.update(console_users).where(console_users.c.id == user_id).values(**values))


def _audit(
    conn: sa.Connection,
    vault: Vault,
    actor: Actor,
    action: str,
    user_id: str,
    account_id: str,
    now: datetime,
    **details: Any,
) -> None:
    record(
        conn, vault, actor, action, now=now, target=user_id, account_id=account_id, details=details
    )
