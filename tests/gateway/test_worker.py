"""The delivery worker's batches: one-statement claims that never hand a job out twice, and a
bad job in a batch that does not hold up the others. Both backends."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine.default import CacheStats

from msgine.server.carriers import SubmitRequest, SubmitResult
from msgine.server.carriers.simulator import DLR_JOB, SimulatorCarrier
from msgine.server.events import event_body
from msgine.server.messages import load_outgoing, load_outgoings
from msgine.server.messages._lifecycle import _SET_STATUS
from msgine.server.messages._service import SUBMIT_JOB
from msgine.server.runtime import Runtime
from msgine.server.storage._engine import begin_write, start_write
from msgine.server.storage._outbox import Claim, _FilterOnly
from msgine.server.storage._tables import events as events_table
from msgine.server.storage._tables import jobs, messages, recipients, simulator_submissions
from msgine.server.worker import MAX_JOB_ATTEMPTS, Job, Worker
from support import make_settings, sqlite_plan

LEASE = timedelta(seconds=60)


def _add_jobs(runtime: Any, count: int, *, kind: str = "test", age: int = 0) -> None:
    now = runtime.now()
    rows = [
        {
            "kind": kind,
            "ref": f"r{n}",
            "due_at": now - timedelta(seconds=age + count - n),
            "attempts": 0,
            "created_at": now,
        }
        for n in range(count)
    ]
    runtime.db.write(lambda conn: conn.execute(sa.insert(jobs), rows))


def _jobs(runtime: Any) -> dict[str, dict[str, Any]]:
    rows = runtime.db.read(lambda conn: conn.execute(sa.select(jobs)).mappings().all())
    return {row["ref"]: dict(row) for row in rows}


def _recipients(runtime: Any) -> dict[str, dict[str, Any]]:
    rows = runtime.db.read(lambda conn: conn.execute(sa.select(recipients)).mappings().all())
    return {row["id"]: dict(row) for row in rows}


# --- claims -------------------------------------------------------------------------------


def test_claim_leases_due_rows_oldest_first_and_skips_leased_ones(runtime: Any) -> None:
    _add_jobs(runtime, 5)
    now = runtime.now()
    later = {"kind": "test", "ref": "later", "due_at": now + timedelta(hours=1), "created_at": now}
    other = {"kind": "other", "ref": "o", "due_at": now - timedelta(hours=1), "created_at": now}
    runtime.db.write(lambda conn: conn.execute(sa.insert(jobs), [later, other]))
    claim = Claim(jobs, due_column="due_at", where=[jobs.c.kind == "test"])

    first = runtime.db.write(lambda conn: claim(conn, now=now, lease=LEASE, limit=3))
    assert [job["ref"] for job in first] == ["r0", "r1", "r2"]
    assert all(job["lease_until"] == now + LEASE for job in first)
    rest = runtime.db.write(lambda conn: claim(conn, now=now, lease=LEASE, limit=10))
    assert [job["ref"] for job in rest] == ["r3", "r4"]  # leased, not yet due, other kind: not
    assert runtime.db.write(lambda conn: claim(conn, now=now, lease=LEASE, limit=10)) == []
    # A worker that died lets its lease run out; the row is claimed again.
    expired = now + LEASE
    again = runtime.db.write(lambda conn: claim(conn, now=expired, lease=LEASE, limit=10))
    assert [job["ref"] for job in again] == ["r0", "r1", "r2", "r3", "r4"]


def test_a_claim_with_alternative_filters_keeps_the_due_and_lease_conditions(
    runtime: Any,
) -> None:
    """The worker's claim filters by several kinds (an OR); each filter must stay grouped, or a
    not-yet-due or leased job of the second kind is handed out."""
    now = runtime.now()
    rows = [
        {"kind": "a", "ref": "due", "due_at": now - timedelta(seconds=2), "created_at": now},
        {"kind": "b", "ref": "due-b", "due_at": now - timedelta(seconds=1), "created_at": now},
        {"kind": "b", "ref": "later", "due_at": now + timedelta(hours=1), "created_at": now},
        {"kind": "c", "ref": "other", "due_at": now - timedelta(hours=1), "created_at": now},
    ]
    runtime.db.write(lambda conn: conn.execute(sa.insert(jobs), rows))
    claim = Claim(jobs, due_column="due_at", where=[sa.or_(jobs.c.kind == "a", jobs.c.kind == "b")])
    first = runtime.db.write(lambda conn: claim(conn, now=now, lease=LEASE, limit=10))
    assert [job["ref"] for job in first] == ["due", "due-b"]
    assert runtime.db.write(lambda conn: claim(conn, now=now, lease=LEASE, limit=10)) == []


def test_filter_only_conditions_are_cached_with_their_own_values(runtime: Any) -> None:
    """A statement with a filter-only condition goes through SQLAlchemy's compiled-statement
    cache like any other (the condition is part of its cache key), and each execution binds
    its own value."""
    _add_jobs(runtime, 2)
    _add_jobs(runtime, 1, kind="other")

    def refs(kind: str) -> tuple[list[str], Any]:
        query = sa.select(jobs.c.ref).where(_FilterOnly(jobs.c.kind == kind)).order_by(jobs.c.id)

        def read(conn: sa.Connection) -> tuple[list[str], Any]:
            result = conn.execute(query)
            return list(result.scalars().all()), result.context.cache_hit

        return runtime.db.read(read)

    refs("test")
    assert refs("test") == (["r0", "r1"], CacheStats.CACHE_HIT)
    assert refs("other") == (["r0"], CacheStats.CACHE_HIT)
    assert refs("none") == ([], CacheStats.CACHE_HIT)


def _claim_plan(runtime: Runtime, claim: Claim) -> list[str]:
    compiled = claim.statement.compile(dialect=runtime.db.write_engine.dialect)
    return sqlite_plan(runtime, compiled.string, (None,) * len(compiled.positiontup or ()))


def test_claims_walk_the_due_index_whatever_else_they_filter_by(tmp_path: Path) -> None:
    """A claim reads its rows in due order from the due column's index and stops at its limit.
    Driven by the jobs' (kind, ref) key or the deliveries' endpoint index instead, SQLite read
    every row of that kind or endpoint and sorted them: each claim then cost time in proportion
    to the whole backlog."""
    from msgine.server.webhooks._dispatch import _CLAIM as delivery_claim

    runtime = Runtime.open(make_settings(tmp_path))
    try:
        worker_claim = Worker(runtime)._claim_statement()
        for claim, index in (
            (worker_claim, "ix_jobs_due_at"),
            (delivery_claim, "ix_webhook_deliveries_next_attempt_at"),
        ):
            plan = _claim_plan(runtime, claim)
            assert any(f"USING INDEX {index}" in step for step in plan), plan
            assert not any("TEMP B-TREE" in step for step in plan), plan
    finally:
        runtime.close()


def test_concurrent_claims_never_hand_out_the_same_job(runtime: Any) -> None:
    """Claimers in separate transactions, overlapping (each holds its transaction open a while):
    on PostgreSQL they skip each other's locked rows; on SQLite they take turns."""
    _add_jobs(runtime, 120)
    claim = Claim(jobs, due_column="due_at", where=[jobs.c.kind == "test"])
    engine = runtime.db.write_engine
    taken: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def claimer(n: int) -> None:
        start.wait()
        while True:
            with begin_write(engine) as conn:
                batch = claim(conn, now=runtime.now(), lease=LEASE, limit=7)
                time.sleep(0.01)  # others claim meanwhile
            if not batch:
                return
            taken[n].extend(job["ref"] for job in batch)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    every = [ref for refs in taken for ref in refs]
    assert sorted(every) == sorted(f"r{n}" for n in range(120))  # each exactly once
    if not runtime.db.is_sqlite:  # SQLite's busy handler may let one writer win every round
        assert sum(1 for refs in taken if refs) > 1  # they claimed side by side


# --- batches ------------------------------------------------------------------------------


class FlakyCarrier:
    """The simulator, except that numbers in ``failing`` raise (a network error, say)."""

    name = "flaky"

    def __init__(self, runtime: Runtime, failing: set[str]) -> None:
        self.inner = SimulatorCarrier(runtime)
        self.failing = failing

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        if request.to in self.failing:
            raise ConnectionError("carrier unreachable")
        return await self.inner.submit(request)


async def _send(api: Any, numbers: list[str]) -> None:
    for number in numbers:
        r = await api.send(to=number)
        assert r.status_code == 201, r.text


NUMBERS = [f"+25670152126{n}" for n in range(5)]


async def test_a_failing_submit_is_retried_alone(api: Any, clock: Any) -> None:
    await _send(api, NUMBERS)
    api.worker.carrier = FlakyCarrier(api.runtime, failing={NUMBERS[2]})
    assert await api.worker.run_once() == 5  # one batch: five submit jobs
    left = _jobs(api.runtime)
    submits = [job for job in left.values() if job["kind"] == SUBMIT_JOB]
    assert len(submits) == 1
    (retry,) = submits
    assert retry["attempts"] == 1 and retry["last_error"] == "ConnectionError"
    assert retry["lease_until"] is None and retry["due_at"] > api.runtime.now()
    statuses = sorted(r["status"] for r in _recipients(api.runtime).values())
    assert statuses == ["queued", "sent", "sent", "sent", "sent"]
    api.worker.carrier.failing.clear()
    clock.advance(seconds=5)
    await api.drain()
    assert {r["status"] for r in _recipients(api.runtime).values()} == {"delivered"}
    assert _jobs(api.runtime) == {}


async def test_a_recipient_that_cannot_be_read_does_not_stop_the_batch(api: Any) -> None:
    await _send(api, NUMBERS)
    broken = sorted(_recipients(api.runtime))[1]
    api.runtime.db.write(
        lambda conn: conn.execute(
            sa.update(recipients).where(recipients.c.id == broken).values(phone=b"garbage")
        )
    )
    await api.worker.run_once()
    rows = _recipients(api.runtime)
    assert rows[broken]["status"] == "queued"
    assert sorted(r["status"] for rid, r in rows.items() if rid != broken) == ["sent"] * 4
    assert _jobs(api.runtime)[broken]["attempts"] == 1


async def test_a_claims_recipients_are_read_together_as_one_by_one(api: Any) -> None:
    """The submit batch reads its recipients in one statement: the same answers, in the
    claim's order, as reading each alone (a missing one is None, a repeated one repeats)."""
    await _send(api, NUMBERS[:3])
    ids = sorted(_recipients(api.runtime))
    asked = [ids[2], "rcp_missing", ids[0], ids[2], ids[1]]
    vault = api.runtime.vault
    together = api.runtime.db.read(lambda conn: load_outgoings(conn, vault, asked))
    alone = [api.runtime.db.read(lambda conn, i=i: load_outgoing(conn, vault, i)) for i in asked]
    assert together == alone
    assert together[1] is None and together[0] == together[3]
    assert sorted(out.to for out in together if out and out is not together[3]) == NUMBERS[:3]


async def test_a_submit_that_keeps_failing_ends_as_carrier_error(api: Any) -> None:
    await _send(api, NUMBERS[:2])
    api.worker.carrier = FlakyCarrier(api.runtime, failing={NUMBERS[0]})
    api.runtime.db.write(
        lambda conn: conn.execute(sa.update(jobs).values(attempts=MAX_JOB_ATTEMPTS - 1))
    )
    await api.worker.run_once()
    statuses = sorted((r["status"], r["error_code"]) for r in _recipients(api.runtime).values())
    assert statuses == [("failed", "carrier_error"), ("sent", None)]
    assert [job["kind"] for job in _jobs(api.runtime).values()] == [DLR_JOB]


async def test_a_failing_outcome_write_is_retried_alone(api: Any) -> None:
    """Handlers take the claimed jobs of their kind as a list; when the shared write of their
    outcomes fails, each is written alone and only the bad one is retried."""
    _add_jobs(api.runtime, 4, kind="custom")
    seen: list[list[str]] = []

    async def handler(worker: Worker, batch: list[Job]) -> None:
        seen.append([job["ref"] for job in batch])

        def outcome(job: Job) -> Any:
            def write(conn: sa.Connection) -> None:
                conn.execute(sa.update(jobs).where(jobs.c.id == job["id"]).values(locked_by="x"))
                if job["ref"] == "r2":
                    raise ValueError("bad job")

            return worker.done(job, write)

        await worker.settle([(job, outcome(job)) for job in batch])

    api.worker.handlers["custom"] = handler
    assert await api.worker.run_once() == 4
    assert seen == [["r0", "r1", "r2", "r3"]]
    left = _jobs(api.runtime)
    assert list(left) == ["r2"]  # the others are done and deleted
    assert left["r2"]["attempts"] == 1 and left["r2"]["last_error"] == "ValueError"
    assert left["r2"]["locked_by"] is None  # its failed write was rolled back


async def test_a_failing_handler_retries_its_jobs_and_spares_other_kinds(api: Any) -> None:
    _add_jobs(api.runtime, 3, kind="broken")
    await _send(api, NUMBERS[:1])

    async def handler(worker: Worker, batch: list[Job]) -> None:
        raise RuntimeError("handler bug")

    api.worker.handlers["broken"] = handler
    assert await api.worker.run_once() == 4
    left = _jobs(api.runtime)
    assert {ref: job["attempts"] for ref, job in left.items() if job["kind"] == "broken"} == {
        "r0": 1,
        "r1": 1,
        "r2": 1,
    }
    assert [r["status"] for r in _recipients(api.runtime).values()] == ["sent"]


async def test_receipts_are_never_dropped(api: Any, clock: Any) -> None:
    """A receipt job that keeps failing is rescheduled however often it failed."""
    _add_jobs(api.runtime, 1, kind=DLR_JOB)
    api.runtime.db.write(lambda conn: conn.execute(sa.update(jobs).values(attempts=50)))

    async def failing(worker: Worker, batch: list[Job]) -> None:
        raise ConnectionError("down")

    api.worker.handlers[DLR_JOB] = failing
    await api.worker.run_once()
    (job,) = _jobs(api.runtime).values()
    assert job["attempts"] == 51 and job["lease_until"] is None


async def test_two_workers_share_the_queue_and_submit_each_recipient_once(
    api: Any, settings: Any, clock: Any
) -> None:
    # Three messages of ten recipients: the workers also race on each message's status.
    # (Limits count recipients: 30 in a second need a key allowed more than the default.)
    key = api.new_key(rate_limit="1000/minute;100/second")
    for batch in range(3):
        numbers = [f"+2567015{batch}{n:04d}" for n in range(10)]
        r = await api.send(key, to=numbers)
        assert r.status_code == 201, r.text
    second = Runtime.open(settings, clock=clock)
    try:
        workers = [api.worker, Worker(second)]
        for worker in workers:
            worker.runtime.settings.worker_batch_size = 4

        async def drain(worker: Worker) -> None:
            while await worker.run_once():
                pass

        await asyncio.gather(*(drain(worker) for worker in workers))
        await asyncio.gather(*(drain(worker) for worker in workers))  # receipts due meanwhile
    finally:
        second.close()
    calls = api.runtime.db.read(
        lambda conn: conn.execute(sa.select(simulator_submissions.c.calls)).scalars().all()
    )
    assert sorted(calls) == [1] * 30
    assert {r["status"] for r in _recipients(api.runtime).values()} == {"delivered"}
    statuses = api.runtime.db.read(
        lambda conn: conn.execute(sa.select(messages.c.status)).scalars().all()
    )
    assert statuses == ["delivered"] * 3


@pytest.mark.usefixtures("every_event_stored")  # what events say, not who gets them
async def test_a_message_status_is_its_recipients_at_every_step(api: Any, clock: Any) -> None:
    """One recipient: the message takes its status directly; several: their aggregate. Each
    message's own recipients only (the count that picks the path is per message)."""
    sent = {}
    for name, to in {
        "alone": "+256701521260",
        "alone_failing": "+256701521999",
        "pair": ["+256701521261", "+256701521999"],
    }.items():
        r = await api.send(to=to)
        assert r.status_code == 201, r.text
        sent[name] = r.json()["id"]

    def message_statuses() -> dict[str, str]:
        rows = api.runtime.db.read(
            lambda conn: conn.execute(sa.select(messages.c.id, messages.c.status)).all()
        )
        by_id = dict(rows)
        return {name: by_id[message_id] for name, message_id in sent.items()}

    await api.worker.run_once()  # the submits
    assert message_statuses() == {"alone": "sent", "alone_failing": "sent", "pair": "sent"}
    clock.advance(seconds=5)
    await api.drain()  # the receipts
    assert message_statuses() == {
        "alone": "delivered",
        "alone_failing": "failed",
        "pair": "partly_delivered",  # one delivered, one failed: never "delivered"
    }
    # Each status event carries the message's status just after its change.
    reported: dict[str, list[tuple[str, str]]] = {}
    for body in sorted(_event_bodies(api.runtime), key=lambda body: body["timestamp"]):
        event = (body["event"], body["data"]["messageStatus"])
        reported.setdefault(body["messageId"], []).append(event)
    assert reported[sent["alone"]] == [("message.sent", "sent"), ("message.delivered", "delivered")]
    assert reported[sent["alone_failing"]] == [
        ("message.sent", "sent"),
        ("message.failed", "failed"),
    ]
    # The pair's changes come two by two (a batch of submits, then of receipts): whichever of
    # each two is recorded first finds the other recipient still waiting.
    pair = reported[sent["pair"]]
    assert sorted(pair[:2]) == [("message.sent", "queued"), ("message.sent", "sent")]
    assert sorted(pair[2:]) in (
        [("message.delivered", "partly_delivered"), ("message.failed", "sent")],
        [("message.delivered", "sent"), ("message.failed", "partly_delivered")],
    )


async def test_a_status_change_counts_only_its_own_message_recipients(api: Any) -> None:
    """The count that sends a one-recipient message down the one-statement path. Counting
    wrongly would still give the right statuses (by the longer path), so it is checked here."""
    sizes = {}
    for to in ("+256701521260", ["+256701521261", "+256701521262"], "+256701521263"):
        r = await api.send(to=to)
        assert r.status_code == 201, r.text
        sizes[r.json()["id"]] = 1 if isinstance(to, str) else len(to)
    with api.runtime.db.write_engine.connect() as conn:
        start_write(conn)
        pairs = conn.execute(sa.select(recipients.c.id, recipients.c.message_id)).all()
        counted = {
            message_id: _SET_STATUS.first(
                conn, {"rid": rid, "new_status": "sent", "status": "sent"}
            )["recipient_count"]
            for rid, message_id in pairs
        }
        conn.rollback()
    assert counted == sizes


def _event_bodies(runtime: Any) -> list[dict[str, Any]]:
    def read(conn: sa.Connection) -> list[dict[str, Any]]:
        ids = conn.execute(sa.select(events_table.c.id)).scalars().all()
        return [json.loads(event_body(conn, runtime.vault, event_id) or b"") for event_id in ids]

    return runtime.db.read(read)


# --- the simulator ----------------------------------------------------------------------


async def test_simulator_records_concurrent_submits_together_and_repeats_idempotently(
    runtime: Any,
) -> None:
    carrier = SimulatorCarrier(runtime)
    writes = 0
    write = runtime.db.awrite

    async def counting(fn: Any) -> Any:
        nonlocal writes
        writes += 1
        return await write(fn)

    runtime.db.awrite = counting
    requests = [
        SubmitRequest(
            submit_key=f"rcp_{n}", to=f"+25670152{n:04d}", sender=None, content="hi", mode="test"
        )
        for n in range(10)
    ]
    first = await asyncio.gather(*(carrier.submit(r) for r in requests))
    assert writes == 1
    again = await carrier.submit(requests[3])
    assert again.carrier_message_id == first[3].carrier_message_id
    rows = runtime.db.read(
        lambda conn: dict(
            conn.execute(
                sa.select(simulator_submissions.c.submit_key, simulator_submissions.c.calls)
            ).all()
        )
    )
    assert rows == {f"rcp_{n}": 2 if n == 3 else 1 for n in range(10)}
    assert len({result.carrier_message_id for result in first}) == 10


async def test_simulator_fails_only_the_submission_that_fails(
    runtime: Any, monkeypatch: Any
) -> None:
    from msgine.server.carriers import simulator

    record = simulator._record_submission

    def failing(conn: sa.Connection, key: str, *args: Any) -> str:
        if key == "rcp_bad":
            raise ValueError("cannot record")
        return record(conn, key, *args)

    monkeypatch.setattr(simulator, "_record_submission", failing)
    carrier = SimulatorCarrier(runtime)
    keys = ["rcp_a", "rcp_bad", "rcp_b"]
    results = await asyncio.gather(
        *(
            carrier.submit(
                SubmitRequest(
                    submit_key=k, to="+256701521269", sender=None, content="x", mode="test"
                )
            )
            for k in keys
        ),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    assert all(isinstance(r, SubmitResult) and r.accepted for r in (results[0], results[2]))
    stored = runtime.db.read(
        lambda conn: conn.execute(sa.select(simulator_submissions.c.submit_key)).scalars().all()
    )
    assert sorted(stored) == ["rcp_a", "rcp_b"]
