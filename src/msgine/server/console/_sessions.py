"""Server-side console sessions: the cookie holds a random token, the table its keyed hash.

A session ends when the user signs out (one or everywhere), is disabled or has two-factor
reset, when it is idle for ``console_idle_timeout`` or older than ``console_absolute_timeout``.
A session that has not finished signing in (password given, code still due) lasts
``PENDING_SECONDS`` at most. When a session finishes signing in its token is replaced, so a
token planted before sign-in (session fixation) is worth nothing after it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from msgine.server._ids import new_id
from msgine.server.crypto import Vault
from msgine.server.storage import console_sessions, console_users

FULL = "full"
PENDING_SECONDS = 600
#: ``last_seen_at`` is written at most this often (a write per page view is not needed).
TOUCH_SECONDS = 30


@dataclass(frozen=True)
class Session:
    """A live session and its user. ``token`` (from the cookie) never reaches a repr."""

    id: str
    user: dict[str, Any] = field(repr=False)
    stage: str
    created_at: datetime
    last_seen_at: datetime
    token: str = field(repr=False)

    @property
    def account_id(self) -> str:
        return str(self.user["account_id"])


@dataclass(frozen=True)
class Timeouts:
    idle: timedelta
    absolute: timedelta


def token_hash(vault: Vault, token: str) -> str:
    return vault.key_hash(f"console-session\x00{token}")


def open_session(
    conn: sa.Connection,
    vault: Vault,
    user: dict[str, Any],
    stage: str,
    *,
    now: datetime,
    source_ip: str | None,
    user_agent: str | None,
) -> str:
    """A new session at ``stage``; returns its token (for the cookie only)."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        sa.insert(console_sessions).values(
            id=new_id("ses"),
            token_hash=token_hash(vault, token),
            user_id=user["id"],
            account_id=user["account_id"],
            stage=stage,
            created_at=now,
            last_seen_at=now,
            source_ip=source_ip,
            user_agent=(user_agent or "")[:200] or None,
        )
    )
    return token


def advance(conn: sa.Connection, vault: Vault, session: Session, stage: str, now: datetime) -> str:
    """Move the session to ``stage`` under a new token (returned)."""
    token = secrets.token_urlsafe(32)
    values: dict[str, Any] = {
        "stage": stage,
        "token_hash": token_hash(vault, token),
        "last_seen_at": now,
    }
    if stage == FULL:
        # The absolute lifetime counts from the completed sign-in.
        values["created_at"] = now
    conn.execute(
        sa.update(console_sessions).where(console_sessions.c.id == session.id).values(**values)
    )
    return token


def find(conn: sa.Connection, vault: Vault, token: str) -> Session | None:
    """The open session holding ``token``, with its user (a read: expiry is ``settle``'s)."""
    row = conn.execute(
        sa.select(console_sessions, console_users)
        .join(console_users, console_users.c.id == console_sessions.c.user_id)
        .where(
            console_sessions.c.token_hash == token_hash(vault, token),
            console_sessions.c.ended_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    found = row._mapping
    return Session(
        id=found[console_sessions.c.id],
        user={c.name: found[c] for c in console_users.c},
        stage=found[console_sessions.c.stage],
        created_at=found[console_sessions.c.created_at],
        last_seen_at=found[console_sessions.c.last_seen_at],
        token=token,
    )


def verdict(session: Session, now: datetime, timeouts: Timeouts) -> str:
    """``"end"`` (expired, or its user disabled), ``"touch"`` (record the activity: at most
    every ``TOUCH_SECONDS``, so most page views write nothing) or ``"live"``."""
    if _expired(session, now, timeouts) or session.user["disabled_at"] is not None:
        return "end"
    return "touch" if now - session.last_seen_at >= timedelta(seconds=TOUCH_SECONDS) else "live"


def touch(conn: sa.Connection, session_id: str, now: datetime) -> None:
    conn.execute(
        sa.update(console_sessions)
        .where(console_sessions.c.id == session_id)
        .values(last_seen_at=now)
    )


def _expired(session: Session, now: datetime, timeouts: Timeouts) -> bool:
    absolute = timeouts.absolute if session.stage == FULL else timedelta(seconds=PENDING_SECONDS)
    return now - session.last_seen_at > timeouts.idle or now - session.created_at > absolute


def end(conn: sa.Connection, session_id: str, now: datetime) -> None:
    conn.execute(
        sa.update(console_sessions)
        .where(console_sessions.c.id == session_id, console_sessions.c.ended_at.is_(None))
        .values(ended_at=now)
    )


def open_sessions(
    conn: sa.Connection, user_id: str, now: datetime, timeouts: Timeouts
) -> list[dict[str, Any]]:
    """The user's signed-in sessions that have not ended or expired, newest first."""
    rows = conn.execute(
        sa.select(console_sessions)
        .where(
            console_sessions.c.user_id == user_id,
            console_sessions.c.ended_at.is_(None),
            console_sessions.c.stage == FULL,
            console_sessions.c.last_seen_at >= now - timeouts.idle,
            console_sessions.c.created_at >= now - timeouts.absolute,
        )
        .order_by(console_sessions.c.created_at.desc())
    )
    return [dict(r._mapping) for r in rows]


def end_own(conn: sa.Connection, user_id: str, session_id: str, now: datetime) -> bool:
    """End one of the user's own sessions; False if it is not theirs or already ended."""
    done = conn.execute(
        sa.update(console_sessions)
        .where(
            console_sessions.c.id == session_id,
            console_sessions.c.user_id == user_id,
            console_sessions.c.ended_at.is_(None),
        )
        .values(ended_at=now)
    )
    return bool(done.rowcount)
