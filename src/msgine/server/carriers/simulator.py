"""The simulator carrier: accepts every message, fails numbers ending in 999, and reports
delivery receipts after a short delay, all durably, so tests exercise the real pipeline.

Submissions are keyed by ``submit_key``: a repeated submit (after a crash between the carrier's
acknowledgement and our own commit) returns the first carrier id and sends nothing new.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from msgine.server._ids import new_id
from msgine.server.carriers._base import SubmitRequest, SubmitResult
from msgine.server.runtime import Runtime
from msgine.server.storage._tables import jobs, simulator_submissions

DLR_JOB = "sim_dlr"
FAILING_SUFFIX = "999"
UNDELIVERABLE = "undeliverable"


class SimulatorCarrier:
    name = "simulator"

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        now = self._runtime.now()
        delay = timedelta(seconds=self._runtime.settings.simulator_dlr_delay)
        outcome = "failed" if request.to.endswith(FAILING_SUFFIX) else "delivered"
        carrier_id = await self._runtime.db.awrite(
            lambda conn: _record_submission(conn, request.submit_key, outcome, now, delay)
        )
        return SubmitResult(accepted=True, carrier_message_id=carrier_id)


_BY_KEY = simulator_submissions.c.submit_key == sa.bindparam("key")
_SUBMISSION = sa.select(simulator_submissions).where(_BY_KEY)
_CARRIER_ID = sa.select(simulator_submissions.c.carrier_message_id).where(_BY_KEY)
_COUNT_CALL = (
    sa.update(simulator_submissions).where(_BY_KEY).values(calls=simulator_submissions.c.calls + 1)
)
_INSERT_SUBMISSION = simulator_submissions.insert()
_INSERT_JOB = jobs.insert()


def _record_submission(
    conn: sa.Connection, submit_key: str, outcome: str, now: datetime, delay: timedelta
) -> str:
    existing = conn.execute(_CARRIER_ID, {"key": submit_key}).scalar()
    if existing is not None:
        conn.execute(_COUNT_CALL, {"key": submit_key})
        return str(existing)
    carrier_id = new_id("sim")
    conn.execute(
        _INSERT_SUBMISSION,
        {
            "submit_key": submit_key,
            "carrier_message_id": carrier_id,
            "outcome": outcome,
            "calls": 1,
            "submitted_at": now,
        },
    )
    conn.execute(
        _INSERT_JOB,
        {
            "kind": DLR_JOB,
            "ref": submit_key,
            "due_at": now + delay,
            "attempts": 0,
            "created_at": now,
        },
    )
    return carrier_id


def receipt_for(conn: sa.Connection, submit_key: str) -> tuple[str, str, str | None] | None:
    """(status, carrier id, error code) of the simulated delivery receipt."""
    row = conn.execute(_SUBMISSION, {"key": submit_key}).mappings().first()
    if row is None:
        return None
    if row["outcome"] == "failed":
        return "failed", row["carrier_message_id"], UNDELIVERABLE
    return "delivered", row["carrier_message_id"], None
