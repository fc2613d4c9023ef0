"""The delivery worker: claims due outbox jobs and runs them, in ``serve`` or ``msgine worker``.

Every job is idempotent: it re-reads its state, and a carrier submit carries a stable key. So a
job whose worker died mid-way (its lease runs out and another worker takes it) is safe to run
again, and nothing is sent twice. A worker that starts takes back at once the jobs of a crashed
process of its own machine (``storage._outbox.take_back``), so a restart does not wait out the
lease.

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
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa

from msgine.server import metrics
from msgine.server.carriers import (
    SIMULATOR,
    Carrier,
    DurableEvents,
    Fleet,
    Routing,
    SubmitRequest,
    SubmitResult,
    apply_early_receipts,
    dedupes,
    observe_health,
    observe_submit,
    publish,
    purge_unclaimed_receipts,
    suppress_opted_out,
    withdraw,
)
from msgine.server.carriers.simulator import DLR_JOB, SimulatorCarrier, receipt_for
from msgine.server.compliance import Decision
from msgine.server.logging import get_logger
from msgine.server.messages import (
    SUBMIT_JOB,
    TERMINAL,
    Outgoing,
    StatusChange,
    load_outgoings,
    note_history,
    recheck,
    record_status,
)
from msgine.server.runtime import Runtime
from msgine.server.storage import Claim, Direct, each, jobs, recipients, take_back

log = get_logger("msgine.worker")
#: The per-message debug lines are built only when they would be kept: at the default level
#: the worker's structlog calls cost a few percent of a delivery's CPU for nothing.
_levels = logging.getLogger("msgine.worker")


def _debugging() -> bool:
    return _levels.isEnabledFor(logging.DEBUG)


Job = dict[str, Any]
#: Settles one job in the batch's shared write: its changes, and the job deleted or rescheduled.
JobWrite = Callable[[sa.Connection], object]
#: Runs the claimed jobs of one kind; registered in ``Worker.handlers`` under that kind.
JobHandler = Callable[["Worker", list[Job]], Awaitable[None]]
BackgroundTask = Callable[[Runtime, asyncio.Event], Coroutine[Any, Any, None]]
MAX_JOB_ATTEMPTS = 10
#: Statuses after a submit went out: the carrier's receipt moves them on, not a new submit.
AWAITING_RECEIPT = frozenset({"sent", "unknown"})

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
        #: Where this process's connected carriers store their receipts and inbound messages.
        self.sink = DurableEvents(runtime)
        #: The carriers of this process; ``carrier`` replaces the built-in simulator.
        self.fleet = Fleet(runtime, self.sink, carrier or SimulatorCarrier(runtime))
        self.handlers: dict[str, JobHandler] = {SUBMIT_JOB: submit_jobs, DLR_JOB: receipt_jobs}
        self._claim: tuple[tuple[str, ...], Claim] | None = None

    @property
    def carrier(self) -> Carrier:
        """The built-in simulator (test keys' carrier)."""
        return self.fleet.builtin

    @carrier.setter
    def carrier(self, carrier: Carrier) -> None:
        self.fleet.builtin = carrier

    async def run(self, stop: asyncio.Event) -> None:
        """Start the carriers, run jobs until ``stop``, then stop the carriers."""
        settings = self.runtime.settings
        interval = settings.worker_poll_interval
        try:
            await self.fleet.refresh()
        except Exception as exc:  # the database may be down at start: the loop retries
            log.error("carriers_start_failed", error_type=type(exc).__name__)
        # Jobs a crashed process of this machine held are due now, not when their lease ends.
        await take_back(self.runtime.db, self._claim_statement(), self.runtime.now())
        log.info(
            "worker_started",
            carriers=self.fleet.names(),
            kinds=sorted(self.handlers),
            batch_size=settings.worker_batch_size,
            poll_interval=interval,
        )
        try:
            await self._loop(stop, interval)
        finally:
            await self.fleet.stop_all()
            log.info("worker_stopped")

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
        if batch and _debugging():
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

    def retry(self, job: Job, exc: Exception, *, delay: float | None = None) -> JobWrite:
        """A failed job's outcome: it runs again later (see ``_retry_later``); ``delay``: the
        carrier said when (a throttle's retry-after)."""
        log.warning("job_failed", kind=job["kind"], job_id=job["id"], error_type=type(exc).__name__)
        runtime = self.runtime
        return lambda conn: _retry_later(conn, runtime, job, exc, delay)

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
            metrics.child(metrics.RECEIPT_SECONDS, self.carrier, change.status).observe(
                max(0.0, (change.at - change.sent_at).total_seconds())
            )
        if not _debugging():
            return
        log.debug(
            "recipient_status",
            message_id=change.message_id,
            recipient_id=change.recipient_id,
            status=change.status,
            carrier=self.carrier,
        )


def _retry_later(
    conn: sa.Connection, runtime: Runtime, job: Job, exc: Exception, delay: float | None = None
) -> None:
    """Back off exponentially (at most 5 minutes), or as long as the carrier asked. A submit
    that keeps failing ends as ``failed``/``carrier_error``; other jobs (delivery receipts)
    are never dropped."""
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
            "due_at": now + timedelta(seconds=min(2**attempts, 300) if delay is None else delay),
            "lease_until": None,
            "locked_by": None,
            "last_error": type(exc).__name__[:200],
        },
    )


# --- submitting ---------------------------------------------------------------------------


@dataclass
class Attempt:
    """One recipient's submit to one carrier, and what its outcome write needs.

    ``marks``: the carrier cannot dedupe a repeated submit, so the submit is recorded as begun
    (``recipients.submitted_at``) in its own commit before it goes out; a worker that finds
    that mark with no outcome knows a submit may have been in flight (see ``_plan``)."""

    job: Job
    out: Outgoing
    name: str
    carrier: Carrier
    following: str | None
    policy: str
    retry_budget: int
    marks: bool
    early_receipts: bool
    notes: list[str]


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
    # Live traffic is routed by the current configuration; test traffic reads none.
    live = any(out.mode == "live" for _, out in sending)
    routing = await worker.fleet.refresh() if live else worker.fleet.routing
    attempts: list[Attempt] = []
    for job, out in sending:
        step = _plan(worker, routing, job, out, now)
        if isinstance(step, Attempt):
            attempts.append(step)
        else:
            outcomes.append((job, step))
    attempts = await _mark_in_flight(worker, attempts, outcomes, now)
    expected: list[tuple[str, str]] = []
    try:
        results = await asyncio.gather(*(_timed_submit(worker, a, expected) for a in attempts))
        submitted_at = runtime.now()
        for attempt, (result, seconds) in zip(attempts, results, strict=True):
            change = _submitted(worker, attempt, result, seconds, submitted_at)
            outcomes.append((attempt.job, change))
        await worker.settle(outcomes)
    finally:
        worker.sink.recorded(expected)


def _outgoing_and_decisions(
    conn: sa.Connection, runtime: Runtime, batch: Sequence[Job], now: datetime
) -> list[tuple[Outgoing, Decision] | None]:
    """Each job's recipient and the compliance gate's answer now; None where there is nothing
    left to do (already sent, its outcome unknown, or final)."""
    found: list[tuple[Outgoing, Decision] | None] = [None] * len(batch)
    todo: list[tuple[int, Outgoing]] = []
    outs = load_outgoings(conn, runtime.vault, [job["ref"] for job in batch])
    for position, out in enumerate(outs):
        if out is not None and out.status not in TERMINAL and out.status not in AWAITING_RECEIPT:
            todo.append((position, out))
    decisions = recheck(conn, [out for _, out in todo], now)
    for (position, out), decision in zip(todo, decisions, strict=True):
        found[position] = (out, decision)
    return found


def _plan(
    worker: Worker, routing: Routing, job: Job, out: Outgoing, now: datetime
) -> Attempt | JobWrite:
    """Which carrier gets this recipient now, or its outcome without a submit.

    Test traffic goes to the built-in simulator. Live traffic follows its route's carriers in
    order, from the one it is already with (after a failover); a carrier that cannot take a
    submit now (down, not built) hands over to the next, with the reason in the history. A
    submit mark with no outcome means a worker died mid-submit: the carrier's policy decides
    (``mark_unknown``: the recipient becomes ``unknown`` and a receipt settles it; ``resubmit``:
    sent to the same carrier again)."""
    runtime = worker.runtime
    settings = runtime.settings
    chain: tuple[str, ...] = (SIMULATOR,)
    if out.mode == "live":
        assert out.to is not None  # erased numbers are rejected by the recheck
        plan = routing.plan(
            account_id=out.account_id,
            mode=out.mode,
            number=out.to,
            region=out.region,
            default_price=settings.price_per_segment,
            default_currency=settings.currency,
            allow_simulator_for_live=settings.allow_simulator_for_live,
        )
        if plan is None:
            return worker.done(job, _status(runtime, out, "failed", now, error_code="no_route"))
        chain = plan.carriers
    notes: list[str] = []
    if out.submitted_at is not None and out.carrier is not None:
        row = routing.carriers.get(out.carrier)
        policy = row.on_uncertain_submit if row is not None else "mark_unknown"
        if policy != "resubmit":
            return worker.done(job, _uncertain(runtime, out, out.carrier, now, CRASHED))
        notes.append(f"resubmitting to {out.carrier} after an uncertain submit")
        chain = (out.carrier, *(name for name in chain if name != out.carrier))
    position = chain.index(out.carrier) if out.carrier in chain else 0
    while position < len(chain) - 1:
        why = worker.fleet.is_down(chain[position])
        if why is None:
            break
        notes.append(f"failover {chain[position]} -> {chain[position + 1]}: {why}")
        position += 1
    name = chain[position]
    carrier, kind = worker.fleet.get(name), worker.fleet.kind(name)
    if carrier is None or kind is None:  # the last carrier of the route cannot be built
        return _retry_on(worker, job, out, name, RuntimeError("carrier unavailable"), notes=notes)
    row = routing.carriers.get(name)
    return Attempt(
        job=job,
        out=out,
        name=name,
        carrier=carrier,
        following=chain[position + 1] if position + 1 < len(chain) else None,
        policy=row.on_uncertain_submit if row is not None else "mark_unknown",
        retry_budget=row.retry_budget if row is not None else MAX_JOB_ATTEMPTS,
        marks=not dedupes(carrier, kind),
        early_receipts=name != SIMULATOR,
        notes=notes,
    )


CRASHED = "a worker stopped between the submit and its answer; a delivery receipt settles it"
_MARK = Direct(
    sa.update(recipients)
    .where(recipients.c.id == sa.bindparam("rid"))
    .values(submitted_at=sa.bindparam("now"), carrier=sa.bindparam("name"))
)
_UNMARK = Direct(
    sa.update(recipients)
    .where(recipients.c.id == sa.bindparam("rid"))
    .values(submitted_at=None, carrier=sa.bindparam("name"))
)


async def _mark_in_flight(
    worker: Worker,
    attempts: list[Attempt],
    outcomes: list[tuple[Job, JobWrite]],
    now: datetime,
) -> list[Attempt]:
    """Commit the submit marks (one write for the batch) before anything goes out; an attempt
    whose mark could not be written is not submitted but retried."""
    marked = [a for a in attempts if a.marks]
    if not marked:
        return attempts
    errors = await each(
        worker.runtime.db.awrite,
        lambda conn, some: [
            _MARK.execute(conn, {"rid": a.out.recipient_id, "now": now, "name": a.name})
            for a in some
        ],
        marked,
    )
    failed = set()
    for attempt, error in zip(marked, errors, strict=True):
        if isinstance(error, Exception):
            failed.add(id(attempt))
            outcomes.append((attempt.job, worker.retry(attempt.job, error)))
    return [a for a in attempts if id(a) not in failed]


async def _timed_submit(
    worker: Worker, attempt: Attempt, expected: list[tuple[str, str]]
) -> tuple[SubmitResult | Exception, float]:
    """Submit, timed; an accepted submit's receipt is told to wait for its record (see
    ``DurableEvents.expect``), which ``expected`` lists."""
    out = attempt.out
    assert out.to is not None  # erased numbers are rejected by the recheck
    assert out.content is not None
    request = SubmitRequest(
        submit_key=out.recipient_id,
        to=out.to,
        sender=out.sender,
        content=out.content,
        mode=out.mode,
        encoding=out.encoding,
        segments=out.segments,
    )
    started = time.perf_counter()
    try:
        result: SubmitResult | Exception = await attempt.carrier.submit(request)
    except Exception as exc:
        result = exc
    seconds = time.perf_counter() - started
    accepted = None if isinstance(result, Exception) or not result.accepted else result
    if attempt.early_receipts and accepted is not None and accepted.carrier_message_id:
        expected.append((attempt.name, accepted.carrier_message_id))
        worker.sink.expect(attempt.name, accepted.carrier_message_id)
    if not _debugging():
        return result, seconds
    log.debug(
        "submitted",
        message_id=out.message_id,
        recipient_id=out.recipient_id,
        carrier=attempt.name,
        accepted=not isinstance(result, Exception) and result.accepted,
        error_code=type(result).__name__ if isinstance(result, Exception) else result.error_code,
    )
    return result, seconds


def _submitted(
    worker: Worker,
    attempt: Attempt,
    result: SubmitResult | Exception,
    seconds: float,
    now: datetime,
) -> JobWrite:
    """The outcome of one carrier submit."""
    job, out, name = attempt.job, attempt.out, attempt.name
    runtime = worker.runtime
    if isinstance(result, Exception):
        observe_submit(name, "error", type(result).__name__, seconds)
        if attempt.marks and attempt.policy != "resubmit":
            why = f"submit to {name} raised {type(result).__name__}: outcome unknown"
            return worker.done(job, _uncertain(runtime, out, name, now, why, attempt.notes))
        # resubmit policy: the mark stays, so the next attempt notes the resubmit
        return _retry_on(worker, job, out, name, result, notes=attempt.notes, unmark=False)
    if result.accepted:
        observe_submit(name, "accepted", result.detail, seconds)
        return worker.done(job, _accepted(runtime, attempt, result, now))
    exhausted = result.retryable and job["attempts"] + 1 >= attempt.retry_budget
    if (result.failover or exhausted) and attempt.following is not None:
        observe_submit(name, "failover", result.detail or result.error_code, seconds)
        reason = "retry budget spent" if not result.failover else "refused"
        why = f"failover {name} -> {attempt.following}: {reason} ({_word(result)})"
        return _failover(worker, job, out, attempt.following, [*attempt.notes, why], now)
    if result.retryable:
        observe_submit(name, "retry", result.detail or result.error_code, seconds)
        return _retry_on(
            worker,
            job,
            out,
            name,
            RuntimeError("carrier asked to retry"),
            notes=attempt.notes,
            delay=result.retry_after,
            unmark=attempt.marks,
        )
    observe_submit(name, "failed", result.detail or result.error_code, seconds)
    error = result.error_code or "carrier_rejected"
    change = _status(
        runtime, out, "failed", now, error_code=error, carrier=name, detail=_word(result)
    )
    if result.opted_out:
        change = _suppressing(runtime, out, name, now, change)
    return worker.done(job, _noted(out, name, attempt.notes, now, change))


def _suppressing(
    runtime: Runtime, out: Outgoing, carrier: str, now: datetime, change: JobWrite
) -> JobWrite:
    """``change``, and the number on the account's suppression list."""

    def write(conn: sa.Connection) -> object:
        suppress_opted_out(conn, runtime.vault, out, carrier, now)
        return change(conn)

    return write


def _word(result: SubmitResult) -> str:
    return result.detail or result.error_code or "no reason given"


def _accepted(runtime: Runtime, attempt: Attempt, result: SubmitResult, now: datetime) -> JobWrite:
    """Record the carrier's id; apply any receipt that came before this record."""
    out, name = attempt.out, attempt.name
    change = _status(
        runtime,
        out,
        "sent",
        now,
        error_code=None,
        carrier_message_id=result.carrier_message_id,
        carrier=name,
        detail=result.detail,
    )
    if not attempt.early_receipts or result.carrier_message_id is None:
        return _noted(out, name, attempt.notes, now, change)
    carrier_id = result.carrier_message_id

    def write(conn: sa.Connection) -> object:
        changed = change(conn)
        apply_early_receipts(conn, runtime.vault, name, carrier_id, out.recipient_id, now)
        return changed

    return _noted(out, name, attempt.notes, now, write)


def _noted(
    out: Outgoing, carrier: str, notes: list[str], now: datetime, fn: JobWrite | None = None
) -> JobWrite:
    """``fn`` after the history lines of this attempt (failovers, a resubmit)."""
    if not notes:
        return fn or (lambda conn: None)

    def write(conn: sa.Connection) -> object:
        for note in notes:
            note_history(conn, out, "queued", now=now, carrier=carrier, detail=note)
        return None if fn is None else fn(conn)  # a status change, reported once committed

    return write


def _uncertain(
    runtime: Runtime,
    out: Outgoing,
    carrier: str,
    now: datetime,
    why: str,
    notes: list[str] | None = None,
) -> JobWrite:
    change = _status(
        runtime, out, "unknown", now, error_code="uncertain_submit", carrier=carrier, detail=why
    )
    return _noted(out, carrier, notes or [], now, change)


def _failover(
    worker: Worker, job: Job, out: Outgoing, following: str, notes: list[str], now: datetime
) -> JobWrite:
    """Hand the recipient to the route's next carrier at once, with a fresh retry budget."""
    name = following

    def write(conn: sa.Connection) -> None:
        _noted(out, name, notes, now)(conn)
        _UNMARK.execute(conn, {"rid": out.recipient_id, "name": name})
        _UPDATE_JOB.execute(
            conn,
            {
                "job_id": job["id"],
                "attempts": 0,
                "due_at": now,
                "lease_until": None,
                "locked_by": None,
            },
        )

    return write


def _retry_on(
    worker: Worker,
    job: Job,
    out: Outgoing,
    carrier: str,
    exc: Exception,
    *,
    notes: list[str],
    delay: float | None = None,
    unmark: bool = True,
) -> JobWrite:
    """Retry later on the same carrier; ``unmark``: the submit is known not to have gone out."""
    retry = worker.retry(job, exc, delay=delay)
    now = worker.runtime.now()

    def write(conn: sa.Connection) -> None:
        _noted(out, carrier, notes, now)(conn)
        if unmark:
            _UNMARK.execute(conn, {"rid": out.recipient_id, "name": carrier})
        retry(conn)

    return write


def _status(
    runtime: Runtime,
    out: Outgoing,
    status: str,
    now: datetime,
    *,
    error_code: str | None,
    carrier_message_id: str | None = None,
    carrier: str | None = None,
    detail: str | None = None,
) -> JobWrite:
    return partial(
        _observed,
        carrier or "",
        partial(
            record_status,
            vault=runtime.vault,
            recipient_id=out.recipient_id,
            status=status,
            now=now,
            error_code=error_code,
            carrier_message_id=carrier_message_id,
            carrier=carrier,
            detail=detail,
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
        _UPDATE_JOB.execute(
            conn, {"job_id": job["id"], "due_at": due, "lease_until": None, "locked_by": None}
        )
        _SCHEDULE_RECIPIENT.execute(conn, {"rid": rid, "updated_at": now})

    return write


# --- delivery receipts --------------------------------------------------------------------


async def receipt_jobs(worker: Worker, batch: list[Job]) -> None:
    """Record the simulator's delivery receipts, all in one write, at one time (the same
    ``now`` object in every row is converted to text once, see ``storage``)."""
    runtime = worker.runtime
    now = runtime.now()
    await worker.settle(
        [(job, worker.done(job, _receipt(runtime, job["ref"], now))) for job in batch]
    )


def _receipt(runtime: Runtime, submit_key: str, now: datetime) -> JobWrite:
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
            now=now,
            error_code=error,
            carrier_message_id=carrier_id,
        )
        return None if changed is None else Observed(SIMULATOR, changed)

    return write


# --- carrier health -----------------------------------------------------------------------


async def publish_health(worker: Worker) -> None:
    """Follow configuration changes (start, rebuild, stop carriers) and publish this process's
    carriers' health for /readyz and ``msgine carriers status``."""
    runtime = worker.runtime
    await worker.fleet.refresh()
    healths = worker.fleet.health()
    observe_health(healths)
    now = runtime.now()
    await runtime.db.awrite(lambda conn: publish(conn, worker.fleet.worker, healths, now))


async def health_loop(worker: Worker, stop: asyncio.Event) -> None:
    """Publish health every interval; once an hour, purge receipts no submit ever claimed."""
    runtime = worker.runtime
    interval = runtime.settings.carrier_health_interval
    purged_at = None
    try:
        while not stop.is_set():
            try:
                await publish_health(worker)
                now = runtime.now()
                if purged_at is None or now - purged_at >= timedelta(hours=1):
                    await runtime.db.awrite(partial(purge_unclaimed_receipts, now=now))
                    purged_at = now
            except Exception as exc:  # the database may be away for a moment: try again
                log.error("carrier_health_failed", error_type=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
    finally:
        name = worker.fleet.worker
        with contextlib.suppress(Exception):
            await runtime.db.awrite(lambda conn: withdraw(conn, name))


def background_tasks(runtime: Runtime) -> list[BackgroundTask]:
    """Everything a worker process runs: the job loop, the carriers' health, plus each
    domain's own loops."""
    worker = Worker(runtime)

    async def job_loop(_runtime: Runtime, stop: asyncio.Event) -> None:
        await worker.run(stop)

    async def carrier_health(_runtime: Runtime, stop: asyncio.Event) -> None:
        await health_loop(worker, stop)

    from msgine.server.compliance import retention_tasks
    from msgine.server.webhooks import delivery_tasks

    return [
        job_loop,
        carrier_health,
        *delivery_tasks(runtime),
        *retention_tasks(runtime),
    ]
