"""The delivery worker: claims due outbox jobs and runs them, in ``serve`` or ``msgine worker``.

Every job is idempotent: it re-reads its state, and a carrier submit carries a stable key. So a
job whose worker died mid-way (its lease runs out and another worker takes it) is safe to run
again, and nothing is sent twice.

Jobs run in batches, one handler call per kind of job in a claim, because the worker shares its
process (and its one interpreter lock) with the API: the submit jobs of a claim share one read,
their carrier submits run concurrently, and all their outcomes are written in one transaction.
A bad job does not hold up the others: when a shared read or write fails, each job's part runs
alone, and a job whose own part fails is retried later with backoff.

Logging (logger ``msgine.worker``): ``info`` when the worker starts and stops; ``debug`` for
each claim and each recipient's submit and status change (ids, statuses and the carrier only:
never a number or text), so ``MSGINE_LOG_LEVEL=DEBUG`` follows one message through the pipeline
and the default level stays quiet under load; ``warning`` for a job that failed and will retry.
Metrics (``msgine.server.metrics``) are counted after the outcome is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa

from msgine.server import metrics
from msgine.server.carriers import Carrier, SubmitRequest, SubmitResult
from msgine.server.carriers.simulator import DLR_JOB, SimulatorCarrier, receipt_for
from msgine.server.compliance._gate import Decision
from msgine.server.logging import get_logger
from msgine.server.messages._lifecycle import (
    TERMINAL,
    Outgoing,
    StatusChange,
    load_outgoing,
    recheck,
    record_status,
)
from msgine.server.messages._service import SUBMIT_JOB
from msgine.server.runtime import Runtime
from msgine.server.storage._direct import Direct
from msgine.server.storage._outbox import Claim, each
from msgine.server.storage._tables import jobs, recipients

log = get_logger("msgine.worker")

Job = dict[str, Any]
#: Settles one job in the batch's shared write: its changes, and the job deleted or rescheduled.
JobWrite = Callable[[sa.Connection], object]
#: Runs the claimed jobs of one kind; registered in ``Worker.handlers`` under that kind.
JobHandler = Callable[["Worker", list[Job]], Awaitable[None]]
BackgroundTask = Callable[[Runtime, asyncio.Event], Coroutine[Any, Any, None]]
MAX_JOB_ATTEMPTS = 10

_DELETE_JOB = Direct(sa.delete(jobs).where(jobs.c.id == sa.bindparam("job_id")))
_UPDATE_JOB = Direct(sa.update(jobs).where(jobs.c.id == sa.bindparam("job_id")))
_SCHEDULE_RECIPIENT = Direct(
    sa.update(recipients)
    .where(recipients.c.id == sa.bindparam("rid"), recipients.c.status != "scheduled")
    .values(status="scheduled")
)


class Worker:
    """Runs due jobs. ``handlers`` maps a job kind to the coroutine that runs a claim's jobs of
    that kind (a list); it reports each job's outcome through ``settle`` (``done`` or ``retry``)."""

    def __init__(self, runtime: Runtime, carrier: Carrier | None = None) -> None:
        self.runtime = runtime
        self.carrier = carrier or SimulatorCarrier(runtime)
        self.handlers: dict[str, JobHandler] = {SUBMIT_JOB: submit_jobs, DLR_JOB: receipt_jobs}
        self._claim: tuple[tuple[str, ...], Claim] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.runtime.settings
        interval = settings.worker_poll_interval
        log.info(
            "worker_started",
            carrier=self.carrier.name,
            kinds=sorted(self.handlers),
            batch_size=settings.worker_batch_size,
            poll_interval=interval,
        )
        try:
            await self._loop(stop, interval)
        finally:
            log.info("worker_stopped", carrier=self.carrier.name)

    async def _loop(self, stop: asyncio.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                done = await self.run_once()
            except Exception as exc:  # keep the worker alive; the jobs stay leased and retry
                log.error("worker_batch_failed", error_type=type(exc).__name__)
                done = 0
            if done == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)

    async def run_once(self) -> int:
        """Claim and run one batch of due jobs; returns how many were claimed."""
        if not self.handlers:
            return 0
        settings = self.runtime.settings
        now = self.runtime.now()
        claim = self._claim_statement()
        batch = await self.runtime.db.awrite(
            lambda conn: claim(
                conn,
                now=now,
                lease=timedelta(seconds=settings.job_lease_seconds),
                limit=settings.worker_batch_size,
            )
        )
        by_kind: dict[str, list[Job]] = {}
        for job in batch:
            by_kind.setdefault(job["kind"], []).append(job)
        if batch:
            kinds = {kind: len(group) for kind, group in by_kind.items()}
            log.debug("jobs_claimed", count=len(batch), kinds=kinds)
        await asyncio.gather(*(self._run_kind(kind, group) for kind, group in by_kind.items()))
        return len(batch)

    def _claim_statement(self) -> Claim:
        """The claim for the registered kinds, rebuilt only when a kind is registered."""
        kinds = tuple(sorted(self.handlers))
        if self._claim is None or self._claim[0] != kinds:
            where = [sa.or_(*(jobs.c.kind == kind for kind in kinds))]  # no IN: see Direct
            self._claim = (kinds, Claim(jobs, due_column="due_at", where=where))
        return self._claim[1]

    async def _run_kind(self, kind: str, group: list[Job]) -> None:
        try:
            await self.handlers[kind](self, group)
        except Exception as exc:  # the handler itself failed: retry its jobs (settled ones stay)
            await self.settle([(job, self.retry(job, exc)) for job in group])

    def done(self, job: Job, fn: JobWrite | None = None) -> JobWrite:
        """A finished job's outcome: ``fn``'s changes, and the job deleted with them."""

        def write(conn: sa.Connection) -> object:
            result = fn(conn) if fn is not None else None
            # Joins the batch's one executemany (nothing reads the job again in it).
            _DELETE_JOB.defer(conn, [{"job_id": job["id"]}])
            return result

        return write

    def retry(self, job: Job, exc: Exception) -> JobWrite:
        """A failed job's outcome: it runs again later (see ``_retry_later``)."""
        log.warning("job_failed", kind=job["kind"], job_id=job["id"], error_type=type(exc).__name__)
        runtime = self.runtime
        return lambda conn: _retry_later(conn, runtime, job, exc)

    async def settle(self, outcomes: Sequence[tuple[Job, JobWrite]]) -> None:
        """Write the outcomes of a batch's jobs in one transaction.

        If that fails, each outcome is written alone; a job whose own outcome fails is retried
        later, and if even that cannot be written, it runs again when its lease runs out.
        """
        errors = await each(self.runtime.db.awrite, _write_all, [w for _, w in outcomes])
        for result in errors:
            if isinstance(result, Observed):
                result.report()
        failed = [
            (job, e)
            for (job, _), e in zip(outcomes, errors, strict=True)
            if isinstance(e, Exception)
        ]
        if not failed:
            return
        retries = [self.retry(job, error) for job, error in failed]
        errors = await each(self.runtime.db.awrite, _write_all, retries)
        for (job, _), error in zip(failed, errors, strict=True):
            if isinstance(error, Exception):
                log.error(
                    "job_retry_failed",
                    kind=job["kind"],
                    job_id=job["id"],
                    error_type=type(error).__name__,
                )


def _write_all(conn: sa.Connection, writes: Sequence[JobWrite]) -> list[object]:
    return [write(conn) for write in writes]


@dataclass(frozen=True)
class Observed:
    """A committed status change and the carrier that caused it: metrics and a debug line."""

    carrier: str
    change: StatusChange

    def report(self) -> None:
        change = self.change
        metrics.status_reached(change.status, carrier=self.carrier, mode=change.mode)
        if change.status in TERMINAL and change.sent_at is not None:
            metrics.RECEIPT_SECONDS.labels(carrier=self.carrier, status=change.status).observe(
                max(0.0, (change.at - change.sent_at).total_seconds())
            )
        log.debug(
            "recipient_status",
            message_id=change.message_id,
            recipient_id=change.recipient_id,
            status=change.status,
            carrier=self.carrier,
        )


def _retry_later(conn: sa.Connection, runtime: Runtime, job: Job, exc: Exception) -> None:
    """Back off exponentially (at most 5 minutes). A submit that keeps failing ends as
    ``failed``/``carrier_error``; other jobs (delivery receipts) are never dropped."""
    attempts = job["attempts"] + 1
    now = runtime.now()
    if attempts >= MAX_JOB_ATTEMPTS and job["kind"] == SUBMIT_JOB:
        # Only while the job is still ours: one settled meanwhile keeps its outcome.
        if _DELETE_JOB.execute(conn, {"job_id": job["id"]}) == 1:
            record_status(
                conn, runtime.vault, job["ref"], "failed", now=now, error_code="carrier_error"
            )
        return
    _UPDATE_JOB.execute(
        conn,
        {
            "job_id": job["id"],
            "attempts": attempts,
            "due_at": now + timedelta(seconds=min(2**attempts, 300)),
            "lease_until": None,
            "last_error": type(exc).__name__[:200],
        },
    )


# --- submitting ---------------------------------------------------------------------------


async def submit_jobs(worker: Worker, batch: list[Job]) -> None:
    """Submit recipients: one read for all (state and the compliance gate's answer), the
    carrier submits concurrently, and one write for all outcomes."""
    runtime = worker.runtime
    now = runtime.now()
    found = await each(
        runtime.db.aread,
        lambda conn, some: _outgoing_and_decisions(conn, runtime, some, now),
        batch,
    )
    outcomes: list[tuple[Job, JobWrite]] = []
    sending: list[tuple[Job, Outgoing]] = []
    for job, item in zip(batch, found, strict=True):
        if isinstance(item, Exception):
            outcomes.append((job, worker.retry(job, item)))
            continue
        if item is None:  # already sent or final: nothing left to do
            outcomes.append((job, worker.done(job)))
            continue
        out, decision = item
        if decision.status == "rejected":
            rejected = _status(runtime, out, "rejected", now, error_code=decision.error_code)
            outcomes.append((job, worker.done(job, rejected)))
        elif decision.status == "scheduled" and decision.due_at is not None:
            outcomes.append((job, _defer(job, out.recipient_id, decision.due_at, now)))
        else:
            sending.append((job, out))
    results = await asyncio.gather(
        *(_submit(worker.carrier, out) for _, out in sending), return_exceptions=True
    )
    submitted_at = runtime.now()
    for (job, out), result in zip(sending, results, strict=True):
        outcomes.append((job, _submitted(worker, job, out, result, submitted_at)))
    await worker.settle(outcomes)


def _outgoing_and_decisions(
    conn: sa.Connection, runtime: Runtime, batch: Sequence[Job], now: datetime
) -> list[tuple[Outgoing, Decision] | None]:
    """Each job's recipient and the compliance gate's answer now; None where there is nothing
    left to do (already sent or final)."""
    found: list[tuple[Outgoing, Decision] | None] = [None] * len(batch)
    todo: list[tuple[int, Outgoing]] = []
    for position, job in enumerate(batch):
        out = load_outgoing(conn, runtime.vault, job["ref"])
        if out is not None and out.status not in TERMINAL and out.status != "sent":
            todo.append((position, out))
    decisions = recheck(conn, [out for _, out in todo], now)
    for (position, out), decision in zip(todo, decisions, strict=True):
        found[position] = (out, decision)
    return found


async def _submit(carrier: Carrier, out: Outgoing) -> SubmitResult:
    assert out.to is not None  # erased numbers are rejected by the recheck
    assert out.content is not None
    started = time.perf_counter()
    try:
        result = await carrier.submit(
            SubmitRequest(
                submit_key=out.recipient_id,
                to=out.to,
                sender=out.sender,
                content=out.content,
                mode=out.mode,
            )
        )
    finally:
        metrics.SUBMIT_SECONDS.labels(carrier=carrier.name).observe(time.perf_counter() - started)
    log.debug(
        "submitted",
        message_id=out.message_id,
        recipient_id=out.recipient_id,
        carrier=carrier.name,
        accepted=result.accepted,
        error_code=result.error_code,
    )
    return result


def _submitted(
    worker: Worker,
    job: Job,
    out: Outgoing,
    result: SubmitResult | BaseException,
    now: datetime,
) -> JobWrite:
    """The outcome of one carrier submit."""
    if isinstance(result, BaseException):
        if not isinstance(result, Exception):
            raise result
        return worker.retry(job, result)
    if result.accepted:
        status, error = "sent", None
    elif result.retryable:
        return worker.retry(job, RuntimeError("carrier asked to retry"))
    else:
        status, error = "failed", result.error_code or "carrier_rejected"
    change = _status(
        worker.runtime,
        out,
        status,
        now,
        error_code=error,
        carrier_message_id=result.carrier_message_id,
        carrier=worker.carrier.name,
    )
    return worker.done(job, change)


def _status(
    runtime: Runtime,
    out: Outgoing,
    status: str,
    now: datetime,
    *,
    error_code: str | None,
    carrier_message_id: str | None = None,
    carrier: str = "",
) -> JobWrite:
    return partial(
        _observed,
        carrier,
        partial(
            record_status,
            vault=runtime.vault,
            recipient_id=out.recipient_id,
            status=status,
            now=now,
            error_code=error_code,
            carrier_message_id=carrier_message_id,
        ),
    )


def _observed(
    carrier: str, change: Callable[[sa.Connection], StatusChange | None], conn: sa.Connection
) -> Observed | None:
    """Run a status change; what it changed, for ``settle`` to report once committed."""
    changed = change(conn)
    return None if changed is None else Observed(carrier, changed)


def _defer(job: Job, rid: str, due: datetime, now: datetime) -> JobWrite:
    """Put the job back until ``due`` (quiet hours) and show the recipient as scheduled."""

    def write(conn: sa.Connection) -> None:
        _UPDATE_JOB.execute(conn, {"job_id": job["id"], "due_at": due, "lease_until": None})
        _SCHEDULE_RECIPIENT.execute(conn, {"rid": rid, "updated_at": now})

    return write


# --- delivery receipts --------------------------------------------------------------------


async def receipt_jobs(worker: Worker, batch: list[Job]) -> None:
    """Record the simulator's delivery receipts, all in one write."""
    runtime = worker.runtime
    await worker.settle([(job, worker.done(job, _receipt(runtime, job["ref"]))) for job in batch])


def _receipt(runtime: Runtime, submit_key: str) -> JobWrite:
    def write(conn: sa.Connection) -> Observed | None:
        receipt = receipt_for(conn, submit_key)
        if receipt is None:
            return None
        status, carrier_id, error = receipt
        changed = record_status(
            conn,
            runtime.vault,
            submit_key,
            status,
            now=runtime.now(),
            error_code=error,
            carrier_message_id=carrier_id,
        )
        return None if changed is None else Observed(SimulatorCarrier.name, changed)

    return write


def background_tasks(runtime: Runtime) -> list[BackgroundTask]:
    """Everything a worker process runs: the job loop plus each domain's own loops."""
    worker = Worker(runtime)

    async def job_loop(_runtime: Runtime, stop: asyncio.Event) -> None:
        await worker.run(stop)

    from msgine.server.compliance import _retention
    from msgine.server.webhooks import _dispatch

    return [job_loop, *_dispatch.background_tasks(runtime), *_retention.background_tasks(runtime)]
