"""Webhook delivery: claims due deliveries, signs and sends them, records each attempt.

The outbox rows (``webhook_deliveries``) are written in the same transaction as the change that
raised the event, so nothing is lost between a status change and its webhook. A delivery is
claimed with a lease; a process killed while holding one simply lets it run out and any dispatcher
picks the delivery up again, so delivery is at least once, always with the event's stable id and
the same stored body bytes. Order across deliveries is not promised.

Signatures are computed per attempt: the timestamp is the wall-clock time of the attempt (what a
receiver's replay window compares against) and the secrets are those valid at that moment, so a
retry during a secret rotation carries both signatures.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa

from msgine.server import metrics
from msgine.server.logging import get_logger
from msgine.server.runtime import Runtime
from msgine.server.storage import (
    Claim,
    events,
    take_back,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)
from msgine.server.webhooks import _endpoints
from msgine.server.webhooks._schedule import next_delay, parse_schedule
from msgine.server.webhooks._transport import AttemptResult, WebhookSender
from msgine.server.webhooks._urlpolicy import UrlPolicy
from msgine.webhooks import signature_headers

log = get_logger("msgine.webhooks")

DEFAULT_CONCURRENCY: Final = 64
MAX_CLAIM: Final = 256
FAILING_DISABLE_AFTER: Final = timedelta(days=5)
# A lease outlives an attempt (at most the timeout) plus the time to record it; a delivery cut off
# by a crash mid-attempt is taken up again once its lease runs out.
LEASE_MARGIN: Final = timedelta(seconds=5)


@dataclass(frozen=True)
class Prepared:
    """One claimed delivery with what sending it needs (decrypted; never logged)."""

    delivery: dict[str, Any]
    url: str | None
    body: bytes | None = field(default=None, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    skip_reason: str | None = None


class Dispatcher:
    """Sends due webhook deliveries with one long-lived, SSRF-safe HTTPS sender."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        sender: WebhookSender | None = None,
        policy: UrlPolicy | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.concurrency = concurrency
        self.schedule = parse_schedule(settings.webhook_retry_schedule)
        self.lease = timedelta(seconds=2 * settings.webhook_timeout) + LEASE_MARGIN
        self._wall_clock = wall_clock
        self._rng = rng
        self.sender = sender or WebhookSender(
            policy or UrlPolicy.from_settings(settings),
            timeout=settings.webhook_timeout,
            ca_bundle=str(settings.webhook_ca_bundle) if settings.webhook_ca_bundle else None,
            max_connections=concurrency,
        )
        self._recorder = _Recorder(runtime)

    async def aclose(self) -> None:
        await self.sender.aclose()

    # --- driving ---------------------------------------------------------------------------

    async def run_once(self, limit: int = MAX_CLAIM) -> int:
        """Claim what is due now, deliver it all, and return how many deliveries were claimed."""
        batch = await self.claim(limit)
        await asyncio.gather(*(self.deliver(item) for item in batch))
        return len(batch)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep up to ``concurrency`` deliveries in flight until ``stop`` is set."""
        in_flight: set[asyncio.Task[None]] = set()
        refill = max(1, self.concurrency // 4)
        poll = self.runtime.settings.worker_poll_interval
        # Deliveries a crashed process of this machine held are due now, not at lease end.
        await take_back(self.runtime.db, _CLAIM, self.runtime.now())
        while not stop.is_set():
            room = self.concurrency - len(in_flight)
            if room < refill and in_flight:
                await _wait(stop, in_flight, poll)  # full: wait for room
                continue
            if not await self._claim_safely(room, in_flight):
                await _wait(stop, set(), poll)  # nothing due
        if in_flight:
            await asyncio.wait(in_flight, timeout=self.runtime.settings.webhook_timeout + 5)

    async def _claim_safely(self, room: int, in_flight: set[asyncio.Task[None]]) -> int:
        try:
            batch = await self.claim(min(room, MAX_CLAIM))
        except Exception as exc:  # the database may be briefly away; try again next round
            log.error("webhook_claim_failed", error_type=type(exc).__name__)
            return 0
        for item in batch:
            task = asyncio.create_task(self.deliver(item))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        return len(batch)

    # --- claiming -------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Prepared]:
        now = self.runtime.now()
        rows = await self.runtime.db.awrite(
            lambda conn: _CLAIM(conn, now=now, lease=self.lease, limit=limit)
        )
        if not rows:
            return []
        vault = self.runtime.vault
        missing = await self.runtime.db.aread(lambda conn: _accounts_without_secret(conn, rows))
        if missing:

            def create_secrets(conn: sa.Connection) -> None:
                for account_id, mode in missing:
                    _endpoints.ensure_account_secret(conn, vault, account_id, now, mode)

            await self.runtime.db.awrite(create_secrets)
        return await self.runtime.db.aread(lambda conn: _prepare(conn, self.runtime, rows))

    # --- sending and recording ---------------------------------------------------------------

    async def deliver(self, item: Prepared) -> None:
        """Send one delivery and record the attempt; failures become retries, never exceptions."""
        attempted_at = self.runtime.now()
        result: AttemptResult | None = None
        if item.skip_reason is None:
            assert item.url is not None
            assert item.body is not None
            result = await self.sender.send(item.url, item.body, self._headers(item))
        delay = None if result is None else self._delay(item, result)
        try:
            await self._recorder.record(Outcome(item, result, attempted_at, delay))
        except Exception as exc:  # the lease runs out and the delivery is attempted again
            log.error("webhook_record_failed", error_type=type(exc).__name__)
            return
        _log_attempt(item, result)

    def _headers(self, item: Prepared) -> dict[str, str]:
        headers = signature_headers(
            item.secrets, item.delivery["event_id"], int(self._wall_clock()), item.body or b""
        )
        headers["content-type"] = "application/json"
        return headers

    def _delay(self, item: Prepared, result: AttemptResult) -> float | None:
        if result.ok or result.gone:
            return None
        return next_delay(
            self.schedule,
            item.delivery["attempts"] + 1,
            retry_after=result.retry_after,
            rng=self._rng,
        )


_CLAIM: Final = Claim(
    webhook_deliveries,
    due_column="next_attempt_at",
    where=[
        webhook_deliveries.c.status == "pending",
        sa.or_(
            webhook_deliveries.c.endpoint_id.is_(None),
            webhook_deliveries.c.endpoint_id.in_(
                sa.select(webhook_endpoints.c.id).where(webhook_endpoints.c.enabled.is_(True))
            ),
        ),
    ],
)


def _accounts_without_secret(
    conn: sa.Connection, rows: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """(account, mode) of the callbackUrl deliveries whose signing secret is not made yet."""
    callbacks = {r["event_id"] for r in rows if r["endpoint_id"] is None}
    if not callbacks:
        return []
    pairs = conn.execute(
        sa.select(events.c.account_id, events.c.mode).where(events.c.id.in_(callbacks)).distinct()
    ).all()
    return [
        (account_id, mode)
        for account_id, mode in pairs
        if not _endpoints.has_account_secret(conn, account_id, mode)
    ]


def _prepare(conn: sa.Connection, runtime: Runtime, rows: list[dict[str, Any]]) -> list[Prepared]:
    """Bodies, URLs and secrets for a claimed batch, in three queries."""
    vault, now = runtime.vault, runtime.now()
    found = conn.execute(
        sa.select(events.c.id, events.c.body, events.c.mode).where(
            events.c.id.in_({r["event_id"] for r in rows})
        )
    ).all()
    bodies = {event_id: blob for event_id, blob, _ in found}
    modes = {event_id: mode for event_id, _, mode in found}
    endpoint_ids = {r["endpoint_id"] for r in rows if r["endpoint_id"] is not None}
    endpoints = {
        row["id"]: dict(row)
        for row in conn.execute(
            sa.select(webhook_endpoints).where(webhook_endpoints.c.id.in_(endpoint_ids))
        ).mappings()
    }
    account_secrets: dict[tuple[str, str], list[str]] = {}
    prepared: list[Prepared] = []
    for row in rows:
        blob = bodies.get(row["event_id"])
        if blob is None:
            prepared.append(Prepared(row, None, skip_reason="event_purged"))
            continue
        body = vault.decrypt(blob, table="events", column="body", row_id=row["event_id"])
        if row["endpoint_id"] is None:  # a callbackUrl: the account's secret of the event's mode
            owner = (row["account_id"], modes[row["event_id"]])
            if owner not in account_secrets:
                account_secrets[owner] = _endpoints.account_secrets(
                    conn, vault, owner[0], now, owner[1]
                )
            prepared.append(Prepared(row, row["url"], body, tuple(account_secrets[owner])))
            continue
        endpoint = endpoints.get(row["endpoint_id"])
        if endpoint is None or not endpoint["enabled"]:
            prepared.append(Prepared(row, None, skip_reason="endpoint_disabled"))
            continue
        secrets = tuple(_endpoints.endpoint_secrets(vault, endpoint, now))
        prepared.append(Prepared(row, endpoint["url"], body, secrets))
    return prepared


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to, waiting to be written."""

    item: Prepared
    result: AttemptResult | None
    attempted_at: datetime
    retry_delay: float | None


class _Recorder:
    """Writes outcomes in batches: those finishing while a write is under way share the next.

    One transaction and a few multi-row statements per batch, instead of several round trips
    per delivery, is what keeps the database from limiting the delivery rate. Each caller still
    waits until its own outcome is committed.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._queue: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, outcome: Outcome) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((outcome, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            await self._write(batch)

    async def _write(self, batch: list[tuple[Outcome, asyncio.Future[None]]]) -> None:
        outcomes = [outcome for outcome, _ in batch]

        def apply(conn: sa.Connection) -> None:
            record_outcomes(conn, self._runtime, outcomes)

        try:
            await self._runtime.db.awrite(apply)
        except Exception as exc:
            for _, done in batch:
                done.set_exception(exc)
        else:
            for _, done in batch:
                done.set_result(None)


def record_outcomes(conn: sa.Connection, runtime: Runtime, outcomes: list[Outcome]) -> None:
    """Store the attempts and move each delivery (and its endpoint's health) on, in one write."""
    now = runtime.now()
    attempted = [o for o in outcomes if o.result is not None]
    if attempted:
        conn.execute(sa.insert(webhook_attempts), [_attempt_row(o) for o in attempted])
    succeeded = [o for o in attempted if o.result is not None and o.result.ok]
    if succeeded:
        _record_successes(conn, succeeded, now)
    for outcome in outcomes:
        if outcome.result is None:
            _finish(
                conn, outcome.item.delivery["id"], "cancelled", now, error=outcome.item.skip_reason
            )
        elif not outcome.result.ok:
            _record_failure(conn, runtime, outcome.item.delivery, outcome.result, outcome, now)


def _attempt_row(outcome: Outcome) -> dict[str, Any]:
    result = outcome.result
    assert result is not None
    return {
        "delivery_id": outcome.item.delivery["id"],
        "attempted_at": outcome.attempted_at,
        "status_code": result.status_code,
        "latency_ms": result.latency_ms,
        "error": result.reported_error,
        "excerpt": result.excerpt or None,
    }


def _record_successes(conn: sa.Connection, succeeded: list[Outcome], now: datetime) -> None:
    conn.execute(
        sa.update(webhook_deliveries)
        .where(
            webhook_deliveries.c.id == sa.bindparam("delivery_id"),
            webhook_deliveries.c.status == "pending",
        )
        .values(
            status="succeeded",
            attempts=sa.bindparam("attempt_count"),
            last_status_code=sa.bindparam("status_code"),
            next_attempt_at=None,
            lease_until=None,
            locked_by=None,
            last_error=None,
            completed_at=now,
        ),
        [
            {
                "delivery_id": o.item.delivery["id"],
                "attempt_count": o.item.delivery["attempts"] + 1,
                "status_code": o.result.status_code if o.result else None,
            }
            for o in succeeded
        ],
    )
    endpoint_ids = sorted({o.item.delivery["endpoint_id"] for o in succeeded} - {None})
    if endpoint_ids:
        conn.execute(
            sa.update(webhook_endpoints)
            .where(webhook_endpoints.c.id.in_(endpoint_ids))
            .values(last_success_at=now, first_failure_at=None)
        )


def _record_failure(
    conn: sa.Connection,
    runtime: Runtime,
    delivery: dict[str, Any],
    result: AttemptResult,
    outcome: Outcome,
    now: datetime,
) -> None:
    attempts = delivery["attempts"] + 1
    if result.gone or outcome.retry_delay is None:
        _finish(conn, delivery["id"], "failed", now, attempts=attempts, result=result)
    else:
        due = now + timedelta(seconds=outcome.retry_delay)
        _retry_later(conn, delivery["id"], attempts, due, result)
    endpoint_id = delivery["endpoint_id"]
    if endpoint_id is None:
        return
    if result.gone:
        _endpoints.disable_endpoint(
            conn, runtime.vault, endpoint_id=endpoint_id, reason="gone", now=now
        )
    else:
        _endpoint_failed(conn, runtime, endpoint_id, now)


def _finish(
    conn: sa.Connection,
    delivery_id: str,
    status: str,
    now: datetime,
    *,
    attempts: int | None = None,
    result: AttemptResult | None = None,
    error: str | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": status,
        "next_attempt_at": None,
        "lease_until": None,
        "locked_by": None,
        "completed_at": now,
        "last_error": error if result is None else result.reported_error,
    }
    if attempts is not None:
        values["attempts"] = attempts
    if result is not None:
        values["last_status_code"] = result.status_code
    conn.execute(_pending_update(delivery_id).values(**values))


def _retry_later(
    conn: sa.Connection, delivery_id: str, attempts: int, due: datetime, result: AttemptResult
) -> None:
    conn.execute(
        _pending_update(delivery_id).values(
            attempts=attempts,
            next_attempt_at=due,
            lease_until=None,
            locked_by=None,
            last_status_code=result.status_code,
            last_error=result.reported_error,
        )
    )


def _pending_update(delivery_id: str) -> sa.Update:
    """Only a pending delivery moves: one cancelled meanwhile (endpoint disabled) stays so."""
    return sa.update(webhook_deliveries).where(
        webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.status == "pending"
    )


def _endpoint_failed(
    conn: sa.Connection, runtime: Runtime, endpoint_id: str, now: datetime
) -> None:
    """Start the failure streak, or end the endpoint when it has failed for five days."""
    since = conn.execute(
        sa.select(webhook_endpoints.c.first_failure_at).where(webhook_endpoints.c.id == endpoint_id)
    ).scalar()
    if since is None:
        conn.execute(
            sa.update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(first_failure_at=now)
        )
    elif now - since >= FAILING_DISABLE_AFTER:
        _endpoints.disable_endpoint(
            conn, runtime.vault, endpoint_id=endpoint_id, reason="failing", now=now
        )


def _log_attempt(item: Prepared, result: AttemptResult | None) -> None:
    if result is None:
        metrics.WEBHOOK_ATTEMPTS.labels(outcome="skipped").inc()
        return
    outcome = "success" if result.ok else "gone" if result.gone else "failure"
    metrics.WEBHOOK_ATTEMPTS.labels(outcome=outcome).inc()
    metrics.WEBHOOK_SECONDS.labels(outcome=outcome).observe(result.latency_ms / 1000)
    if not result.ok:
        log.info(
            "webhook_attempt_failed",
            delivery_id=item.delivery["id"],
            endpoint_id=item.delivery["endpoint_id"],
            attempt=item.delivery["attempts"] + 1,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
        )


async def _wait(stop: asyncio.Event, in_flight: set[asyncio.Task[None]], poll: float) -> None:
    """Sleep until stop, a delivery finishing (room to claim), or the next poll."""
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({stopper, *in_flight}, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper


def background_tasks(runtime: Runtime) -> list[Any]:
    """The dispatcher loop a worker process runs."""

    async def dispatch_loop(rt: Runtime, stop: asyncio.Event) -> None:
        dispatcher = Dispatcher(rt)
        try:
            await dispatcher.run(stop)
        finally:
            await dispatcher.aclose()

    return [dispatch_loop]
