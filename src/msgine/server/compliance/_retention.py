"""Retention: purging personal data older than each account's retention period.

Message text, numbers, inbound messages and webhook payloads older than the account's
``retentionDays`` (default 30) are removed; counts, statuses, segments and costs stay for
billing and statistics. Nothing that may still be sent is touched: a message waiting to go out
keeps its text and numbers, and an event keeps its payload while a webhook delivery of it is
still retrying (for at most ``DELIVERY_GRACE`` more). Consents (evidence) and the suppression
list are never purged by age: both must outlive any single message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from msgine.server.accounts import list_accounts, policy_of
from msgine.server.audit import Actor, record
from msgine.server.compliance._scrub import flush_log, zero_freed_space
from msgine.server.compliance._subjects import UNLINKED
from msgine.server.logging import get_logger
from msgine.server.runtime import Runtime
from msgine.server.storage import (
    events,
    idempotency_keys,
    inbound_messages,
    messages,
    recipients,
    webhook_deliveries,
)

log = get_logger("msgine.retention")

PURGE_INTERVAL_SECONDS = 3600
#: How long past the retention limit a payload waits for a webhook delivery still retrying.
DELIVERY_GRACE = timedelta(days=7)
#: Statuses of a message that may still be sent; its text and numbers are needed until then.
WAITING = ("pending", "scheduled", "queued")
RETENTION_ACTOR = Actor(name="system:retention")


@dataclass(frozen=True)
class Purged:
    """How many rows lost their personal data in one account."""

    messages: int = 0
    recipients: int = 0
    inbound_messages: int = 0
    events: int = 0

    @property
    def total(self) -> int:
        return self.messages + self.recipients + self.inbound_messages + self.events

    def view(self) -> dict[str, int]:
        return {
            "messages": self.messages,
            "recipients": self.recipients,
            "inboundMessages": self.inbound_messages,
            "events": self.events,
        }


def _due_messages(account_id: str, cutoff: datetime) -> sa.Select[Any]:
    """Ids of messages past the cutoff whose text and numbers may go (not already purged, here
    or by erasure, and not waiting to be sent)."""
    return sa.select(messages.c.id).where(
        messages.c.account_id == account_id,
        messages.c.created_at < cutoff,
        messages.c.purged_at.is_(None),
        messages.c.status.not_in(WAITING),
    )


def _due_recipients(old: sa.Select[Any]) -> tuple[Any, ...]:
    return (recipients.c.message_id.in_(old), recipients.c.phone_index != UNLINKED)


def _due_inbound(account_id: str, cutoff: datetime) -> tuple[Any, ...]:
    return (
        inbound_messages.c.account_id == account_id,
        inbound_messages.c.received_at < cutoff,
        inbound_messages.c.purged_at.is_(None),
    )


def _due_events(account_id: str, cutoff: datetime) -> tuple[Any, ...]:
    """Events past the cutoff, except those a webhook delivery is still retrying (for at most
    ``DELIVERY_GRACE`` more)."""
    retrying = sa.select(webhook_deliveries.c.event_id).where(
        webhook_deliveries.c.account_id == account_id,
        webhook_deliveries.c.completed_at.is_(None),
    )
    return (
        events.c.account_id == account_id,
        events.c.created_at < cutoff,
        events.c.purged_at.is_(None),
        sa.or_(events.c.id.not_in(retrying), events.c.created_at < cutoff - DELIVERY_GRACE),
    )


def _purge_messages(
    conn: sa.Connection, account_id: str, cutoff: datetime, now: datetime
) -> tuple[int, int]:
    old = _due_messages(account_id, cutoff)
    recipient_count = conn.execute(
        sa.update(recipients).where(*_due_recipients(old)).values(phone=None, phone_index=UNLINKED)
    ).rowcount
    conn.execute(sa.delete(idempotency_keys).where(idempotency_keys.c.message_id.in_(old)))
    message_count = conn.execute(
        sa.update(messages)
        .where(messages.c.id.in_(old), messages.c.purged_at.is_(None))
        .values(content=None, purged_at=now)
    ).rowcount
    return int(message_count), int(recipient_count)


def _purge_inbound(conn: sa.Connection, account_id: str, cutoff: datetime, now: datetime) -> int:
    return int(
        conn.execute(
            sa.update(inbound_messages)
            .where(*_due_inbound(account_id, cutoff))
            .values(phone=None, body=None, phone_index=UNLINKED, purged_at=now)
        ).rowcount
    )


def _purge_events(conn: sa.Connection, account_id: str, cutoff: datetime, now: datetime) -> int:
    return int(
        conn.execute(
            sa.update(events)
            .where(*_due_events(account_id, cutoff))
            .values(body=None, phone_index=None, purged_at=now)
        ).rowcount
    )


def _cutoff(
    conn: sa.Connection, account_id: str, now: datetime, older_than_days: int | None
) -> datetime:
    days = older_than_days
    if days is None:
        days = policy_of(conn, account_id).retention_days
    return now - timedelta(days=days)


def purge_account(
    conn: sa.Connection, account_id: str, *, now: datetime, older_than_days: int | None = None
) -> Purged:
    """Purge one account (its own retention period unless ``older_than_days`` overrides it)."""
    zero_freed_space(conn)
    cutoff = _cutoff(conn, account_id, now, older_than_days)
    message_count, recipient_count = _purge_messages(conn, account_id, cutoff, now)
    return Purged(
        messages=message_count,
        recipients=recipient_count,
        inbound_messages=_purge_inbound(conn, account_id, cutoff, now),
        events=_purge_events(conn, account_id, cutoff, now),
    )


def _count(conn: sa.Connection, table: sa.Table, *where: Any) -> int:
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
    )


def count_due(
    conn: sa.Connection, account_id: str, *, now: datetime, older_than_days: int | None = None
) -> Purged:
    """What :func:`purge_account` would remove now, counted with the same conditions and
    changing nothing (``retention purge --dry-run``)."""
    cutoff = _cutoff(conn, account_id, now, older_than_days)
    old = _due_messages(account_id, cutoff)
    return Purged(
        messages=_count(conn, messages, messages.c.id.in_(old)),
        recipients=_count(conn, recipients, *_due_recipients(old)),
        inbound_messages=_count(conn, inbound_messages, *_due_inbound(account_id, cutoff)),
        events=_count(conn, events, *_due_events(account_id, cutoff)),
    )


def _purge_and_audit(
    conn: sa.Connection,
    runtime: Runtime,
    account_id: str,
    *,
    now: datetime,
    older_than_days: int | None,
    actor: Actor,
) -> Purged:
    purged = purge_account(conn, account_id, now=now, older_than_days=older_than_days)
    if purged.total:
        details: dict[str, Any] = {**purged.view(), "olderThanDays": older_than_days}
        record(
            conn,
            runtime.vault,
            actor,
            "retention.purged",
            now=now,
            account_id=account_id,
            details=details,
        )
    return purged


def _check_days(older_than_days: int | None) -> None:
    if older_than_days is not None and older_than_days < 0:
        raise ValueError("older_than_days must not be negative")


def run_purge(
    runtime: Runtime,
    *,
    older_than_days: int | None = None,
    actor: Actor = RETENTION_ACTOR,
    on_account: Callable[[], None] | None = None,
) -> dict[str, dict[str, int]]:
    """Purge every account, one transaction each, each purge that removed something audited
    (counts only). Returns counts by account id; ``on_account`` is called after each one (a
    progress bar). Blocking: call from a thread in async code."""
    _check_days(older_than_days)
    account_ids = [a["id"] for a in runtime.db.read(list_accounts)]
    results: dict[str, dict[str, int]] = {}
    for account_id in account_ids:
        apply = functools.partial(
            _purge_and_audit,
            runtime=runtime,
            account_id=account_id,
            now=runtime.now(),
            older_than_days=older_than_days,
            actor=actor,
        )
        results[account_id] = runtime.db.write(apply).view()
        if on_account is not None:
            on_account()
    if any(sum(counts.values()) for counts in results.values()):
        flush_log(runtime.db)
    return results


def preview_purge(
    runtime: Runtime, *, older_than_days: int | None = None
) -> dict[str, dict[str, int]]:
    """What :func:`run_purge` would remove now, by account id; reads only."""
    _check_days(older_than_days)
    now = runtime.now()

    def count(conn: sa.Connection) -> dict[str, dict[str, int]]:
        return {
            a["id"]: count_due(conn, a["id"], now=now, older_than_days=older_than_days).view()
            for a in list_accounts(conn)
        }

    return runtime.db.read(count)


async def retention_loop(runtime: Runtime, stop: asyncio.Event) -> None:
    """Purge at start, then every ``PURGE_INTERVAL_SECONDS``, until ``stop`` is set."""
    while True:
        try:
            results = await asyncio.to_thread(run_purge, runtime)
            total = sum(sum(counts.values()) for counts in results.values())
            if total:
                log.info("retention_purged", rows=total, accounts=len(results))
        except Exception as exc:  # keep the loop alive; the next run retries
            log.error("retention_failed", error_type=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=PURGE_INTERVAL_SECONDS)
        if stop.is_set():
            return


def background_tasks(runtime: Runtime) -> list[Any]:
    """The periodic retention loop a worker process runs."""
    return [retention_loop]
