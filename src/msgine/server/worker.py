"""The delivery worker: claims due outbox jobs and runs them, in ``serve`` or ``msgine worker``.

Every job is idempotent: it re-reads its state, and a carrier submit carries a stable key. So a
job whose worker died mid-way (its lease runs out and another worker takes it) is safe to run
again, and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from msgine.server.carriers import Carrier, SubmitRequest
from msgine.server.carriers.simulator import DLR_JOB, SimulatorCarrier, receipt_for
from msgine.server.compliance._gate import Decision
from msgine.server.logging import get_logger
from msgine.server.messages._lifecycle import (
    TERMINAL,
    Outgoing,
    load_outgoing,
    recheck,
    record_status,
)
from msgine.server.messages._service import SUBMIT_JOB
from msgine.server.runtime import Runtime
from msgine.server.storage._outbox import claim
from msgine.server.storage._tables import jobs, recipients

log = get_logger("msgine.worker")

_DELETE_JOB = sa.delete(jobs).where(jobs.c.id == sa.bindparam("job_id"))

JobHandler = Callable[["Worker", dict[str, Any]], Awaitable[None]]
BackgroundTask = Callable[[Runtime, asyncio.Event], Coroutine[Any, Any, None]]
MAX_JOB_ATTEMPTS = 10


class Worker:
    def __init__(self, runtime: Runtime, carrier: Carrier | None = None) -> None:
        self.runtime = runtime
        self.carrier = carrier or SimulatorCarrier(runtime)
        self.handlers: dict[str, JobHandler] = {SUBMIT_JOB: submit_job, DLR_JOB: receipt_job}

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.runtime.settings.worker_poll_interval
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
        settings = self.runtime.settings
        now = self.runtime.now()
        batch = await self.runtime.db.awrite(
            lambda conn: claim(
                conn,
                jobs,
                due_column="due_at",
                now=now,
                lease=timedelta(seconds=settings.job_lease_seconds),
                limit=settings.worker_batch_size,
                where=[jobs.c.kind.in_(list(self.handlers))],
            )
        )
        await asyncio.gather(*(self._run_job(job) for job in batch))
        return len(batch)

    async def _run_job(self, job: dict[str, Any]) -> None:
        try:
            await self.handlers[job["kind"]](self, job)
        except Exception as exc:
            error = exc
            log.warning(
                "job_failed", kind=job["kind"], job_id=job["id"], error_type=type(error).__name__
            )
            await self.runtime.db.awrite(lambda conn: _retry_later(conn, self.runtime, job, error))

    async def finish(
        self, job: dict[str, Any], fn: Callable[[sa.Connection], object] | None = None
    ) -> None:
        """Apply ``fn`` and delete the job in one transaction."""

        def apply(conn: sa.Connection) -> None:
            if fn is not None:
                fn(conn)
            conn.execute(_DELETE_JOB, {"job_id": job["id"]})

        await self.runtime.db.awrite(apply)


def _retry_later(
    conn: sa.Connection, runtime: Runtime, job: dict[str, Any], exc: Exception
) -> None:
    """Back off exponentially (at most 5 minutes). A submit that keeps failing ends as
    ``failed``/``carrier_error``; other jobs (delivery receipts) are never dropped."""
    attempts = job["attempts"] + 1
    now = runtime.now()
    if attempts >= MAX_JOB_ATTEMPTS and job["kind"] == SUBMIT_JOB:
        record_status(
            conn, runtime.vault, job["ref"], "failed", now=now, error_code="carrier_error"
        )
        conn.execute(_DELETE_JOB, {"job_id": job["id"]})
        return
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.id == job["id"])
        .values(
            attempts=attempts,
            due_at=now + timedelta(seconds=min(2**attempts, 300)),
            lease_until=None,
            last_error=type(exc).__name__[:200],
        )
    )


def _outgoing_and_decision(
    conn: sa.Connection, runtime: Runtime, rid: str, now: datetime
) -> tuple[Outgoing, Decision] | None:
    """The recipient to submit and the compliance gate's answer now, in one read; None when
    there is nothing left to do (already sent or final)."""
    out = load_outgoing(conn, runtime.vault, rid)
    if out is None or out.status in TERMINAL or out.status == "sent":
        return None
    return out, recheck(conn, out, now)


async def submit_job(worker: Worker, job: dict[str, Any]) -> None:
    runtime = worker.runtime
    rid = job["ref"]
    now = runtime.now()
    found = await runtime.db.aread(lambda conn: _outgoing_and_decision(conn, runtime, rid, now))
    if found is None:
        await worker.finish(job)
        return
    out, decision = found
    if decision.status == "rejected":
        await worker.finish(
            job,
            lambda conn: record_status(
                conn, runtime.vault, rid, "rejected", now=now, error_code=decision.error_code
            ),
        )
        return
    if decision.status == "scheduled" and decision.due_at is not None:
        due = decision.due_at
        await runtime.db.awrite(lambda conn: _defer(conn, job["id"], rid, due, now))
        return
    assert out.to is not None
    assert out.content is not None
    result = await worker.carrier.submit(
        SubmitRequest(
            submit_key=rid, to=out.to, sender=out.sender, content=out.content, mode=out.mode
        )
    )
    if result.accepted:
        status, error = "sent", None
    elif result.retryable:
        raise RuntimeError("carrier asked to retry")
    else:
        status, error = "failed", result.error_code or "carrier_rejected"
    done = runtime.now()
    await worker.finish(
        job,
        lambda conn: record_status(
            conn,
            runtime.vault,
            rid,
            status,
            now=done,
            error_code=error,
            carrier_message_id=result.carrier_message_id,
        ),
    )


def _defer(conn: sa.Connection, job_id: int, rid: str, due: Any, now: Any) -> None:
    conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(due_at=due, lease_until=None))
    conn.execute(
        sa.update(recipients)
        .where(recipients.c.id == rid, recipients.c.status != "scheduled")
        .values(status="scheduled", updated_at=now)
    )


async def receipt_job(worker: Worker, job: dict[str, Any]) -> None:
    runtime = worker.runtime

    def apply(conn: sa.Connection) -> None:
        receipt = receipt_for(conn, job["ref"])
        if receipt is not None:
            status, carrier_id, error = receipt
            record_status(
                conn,
                runtime.vault,
                job["ref"],
                status,
                now=runtime.now(),
                error_code=error,
                carrier_message_id=carrier_id,
            )

    await worker.finish(job, apply)


def background_tasks(runtime: Runtime) -> list[BackgroundTask]:
    """Everything a worker process runs: the job loop plus each domain's own loops."""
    worker = Worker(runtime)

    async def job_loop(_runtime: Runtime, stop: asyncio.Event) -> None:
        await worker.run(stop)

    from msgine.server.compliance import _retention
    from msgine.server.webhooks import _dispatch

    return [job_loop, *_dispatch.background_tasks(runtime), *_retention.background_tasks(runtime)]
