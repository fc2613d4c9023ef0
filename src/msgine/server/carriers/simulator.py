"""The simulator carrier: accepts every message, fails numbers ending in 999, and reports
delivery receipts after a short delay, all durably, so tests exercise the real pipeline.

Submissions are keyed by ``submit_key``: a repeated submit (after a crash between the carrier's
acknowledgement and our own commit) returns the first carrier id and sends nothing new.
Submits made concurrently (the worker submits a batch at once) are recorded in one write,
as a real carrier's network round trips would overlap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from msgine.server._ids import new_id
from msgine.server.carriers._base import SubmitRequest, SubmitResult
from msgine.server.runtime import Runtime
from msgine.server.storage import Direct, each, jobs, simulator_submissions

DLR_JOB = "sim_dlr"
FAILING_SUFFIX = "999"
UNDELIVERABLE = "undeliverable"

# (submit key, outcome), and who waits for its carrier id.
_Pending = tuple[tuple[str, str], "asyncio.Future[str]"]


class SimulatorCarrier:
    def __init__(self, runtime: Runtime, name: str = "simulator") -> None:
        self.name = name
        self._runtime = runtime
        self._pending: list[_Pending] = []
        self._flushing: asyncio.Task[None] | None = None  # held: the loop keeps weak references

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        outcome = "failed" if request.to.endswith(FAILING_SUFFIX) else "delivered"
        loop = asyncio.get_running_loop()
        carrier_id: asyncio.Future[str] = loop.create_future()
        self._pending.append(((request.submit_key, outcome), carrier_id))
        if len(self._pending) == 1:
            # Runs after every submit already scheduled in this turn of the loop has queued.
            self._flushing = loop.create_task(self._flush())
        return SubmitResult(accepted=True, carrier_message_id=await carrier_id)

    async def _flush(self) -> None:
        """Record every queued submission in one write and answer each submitter."""
        batch, self._pending = self._pending, []
        now = self._runtime.now()
        delay = timedelta(seconds=self._runtime.settings.simulator_dlr_delay)
        try:
            results = await each(
                self._runtime.db.awrite,
                lambda conn, some: [
                    _record_submission(conn, key, outcome, now, delay) for key, outcome in some
                ],
                [submission for submission, _ in batch],
            )
        except BaseException:  # cancelled: so are the submits waiting on it
            for _, waiter in batch:
                waiter.cancel()
            raise
        for (_, waiter), result in zip(batch, results, strict=True):
            if waiter.done():  # its submitter gave up waiting
                continue
            if isinstance(result, Exception):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)


_BY_KEY = simulator_submissions.c.submit_key == sa.bindparam("key")
_RECEIPT = Direct(
    sa.select(simulator_submissions.c.outcome, simulator_submissions.c.carrier_message_id).where(
        _BY_KEY
    )
)


def _record(insert: Callable[[sa.Table], Any]) -> Direct:
    """Record a submission, or count a repeated one: one statement either way, returning the
    first carrier id and how many calls the key has had (1: this one is new)."""
    statement = insert(simulator_submissions)
    table = simulator_submissions.c
    return Direct(
        statement.on_conflict_do_update(
            index_elements=[table.submit_key], set_={"calls": table.calls + 1}
        ).returning(table.carrier_message_id, table.calls)
    )


_RECORD = {"sqlite": _record(sqlite.insert), "postgresql": _record(postgresql.insert)}
_INSERT_JOB = Direct(jobs.insert())


def _record_submission(
    conn: sa.Connection, submit_key: str, outcome: str, now: datetime, delay: timedelta
) -> str:
    row = _RECORD[conn.dialect.name].first(
        conn,
        {
            "submit_key": submit_key,
            "carrier_message_id": new_id("sim"),
            "outcome": outcome,
            "calls": 1,
            "submitted_at": now,
        },
    )
    assert row is not None  # an upsert returns its row
    if row["calls"] == 1:
        # The receipt's job is claimed in a later transaction: it joins the batch's multi-row
        # insert.
        _INSERT_JOB.defer(
            conn,
            [
                {
                    "kind": DLR_JOB,
                    "ref": submit_key,
                    "due_at": now + delay,
                    "attempts": 0,
                    "created_at": now,
                }
            ],
        )
    return str(row["carrier_message_id"])


def receipt_for(conn: sa.Connection, submit_key: str) -> tuple[str, str, str | None] | None:
    """(status, carrier id, error code) of the simulated delivery receipt."""
    row = _RECEIPT.first(conn, {"key": submit_key})
    if row is None:
        return None
    if row["outcome"] == "failed":
        return "failed", row["carrier_message_id"], UNDELIVERABLE
    return "delivered", row["carrier_message_id"], None
