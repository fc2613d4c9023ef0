"""Fast recovery: a restarted process takes back the claims of a crashed process of its own
machine at once, never those of a live process (here or elsewhere), which keep their lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from msgine.server._process import is_gone, owner_of, this_process
from msgine.server.storage import Claim, take_back
from msgine.server.storage._tables import jobs, recipients, simulator_submissions
from support import NO_LIMITS, gateway_env, send_many, start_gateway, wait_final

LEASE = timedelta(seconds=60)


@pytest.fixture
def live_process() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def _dead_owner() -> str:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = owner_of(process.pid)  # read while it runs (its start time), judged once it ended
    process.wait()
    return owner


def test_only_a_provably_gone_local_owner_is_gone(live_process: subprocess.Popen[bytes]) -> None:
    assert is_gone(_dead_owner())
    assert not is_gone(owner_of(live_process.pid))
    assert not is_gone(this_process())
    node, pid, start = owner_of(live_process.pid).split(":")
    assert is_gone(f"{node}:{pid}:{int(start) + 1}")  # the pid now belongs to another process
    assert is_gone(f"{node}:{os.getpid()}:{int(start) + 1}")  # an earlier process with our pid
    assert not is_gone(f"0000000000000000:{live_process.pid + 10_000_000}:{start}")  # elsewhere
    assert not is_gone("not an owner")


async def test_take_back_releases_a_dead_owners_claims_only(
    runtime: Any, live_process: subprocess.Popen[bytes]
) -> None:
    now = runtime.now()
    rows = [
        {"kind": "test", "ref": f"r{n}", "due_at": now, "attempts": 0, "created_at": now}
        for n in range(6)
    ]
    runtime.db.write(lambda conn: conn.execute(sa.insert(jobs), rows))
    claim = Claim(jobs, due_column="due_at")
    claimed = runtime.db.write(lambda conn: claim(conn, now=now, lease=LEASE, limit=6))
    assert {row["locked_by"] for row in claimed} == {this_process()}
    owners = [_dead_owner(), owner_of(live_process.pid), "0000000000000000:1:1", this_process()]
    for n, row in enumerate(claimed):
        who = owners[n % 3] if n < 5 else owners[3]
        runtime.db.write(
            lambda conn, i=row["id"], who=who: conn.execute(
                sa.update(jobs).where(jobs.c.id == i).values(locked_by=who)
            )
        )
    assert await take_back(runtime.db, claim, now) == 2  # refs r0 and r3: the dead owner's
    after = {
        row.ref: row for row in runtime.db.read(lambda conn: conn.execute(sa.select(jobs)).all())
    }
    assert {ref for ref, row in after.items() if row.lease_until is None} == {"r0", "r3"}
    again = runtime.db.write(lambda conn: claim(conn, now=now, lease=LEASE, limit=6))
    assert sorted(row["ref"] for row in again) == ["r0", "r3"]


# --- a real gateway killed with SIGKILL -----------------------------------------------------


def _leased(db_file: Path) -> list[Any]:
    engine = sa.create_engine(f"sqlite:///{db_file}")
    try:
        with engine.connect() as conn:
            now = datetime.now(UTC)
            return list(conn.execute(sa.select(jobs).where(jobs.c.lease_until > now)).all())
    finally:
        engine.dispose()


def _wait_stopped(pid: int) -> None:
    """Until every thread of ``pid`` has stopped: a signal is delivered asynchronously, and a
    thread still running could settle the claims read as held."""
    tasks = Path(f"/proc/{pid}/task")
    while any(
        (task / "stat").read_text().rsplit(")", 1)[1].split()[0] not in "tT"
        for task in tasks.iterdir()
    ):
        time.sleep(0.001)


def _kill_holding_claims(process: subprocess.Popen[str], db_file: Path) -> list[Any]:
    """SIGKILL the gateway at a moment it holds claimed jobs; the claims the database still
    holds for it once it is dead (empty when the kill came too late for them)."""
    for _ in range(200):
        process.send_signal(signal.SIGSTOP)
        _wait_stopped(process.pid)
        if _leased(db_file):
            break
        process.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    process.kill()
    process.wait(timeout=15)
    # Read again with the process gone: a claim seen while it was stopped was, rarely, not
    # there for the next opener of the database (seen on SQLite under heavy load).
    return _leased(db_file)


RECIPIENTS = 20


@pytest.mark.slow
def test_a_restarted_gateway_takes_back_its_claims_without_waiting_out_the_lease(
    tmp_path: Path,
) -> None:
    env = gateway_env(tmp_path, MSGINE_SIMULATOR_DLR_DELAY="0.3", **NO_LIMITS)
    env["MSGINE_RATE_LIMIT_PER_RECIPIENT"] = "1000000/hour"  # a retry sends to the same numbers
    assert "MSGINE_JOB_LEASE_SECONDS" not in env  # the default 60 s lease
    db_file = tmp_path / "gw-data" / "msgine.db"
    accepted: list[str] = []
    gw = start_gateway(env, cwd=tmp_path)
    key, port = gw.api_key, gw.port
    for attempt in range(3):
        try:
            # A backlog that falls due at one moment, large enough that even a fast machine's
            # worker holds claims for a while: 800 recipients, due once all are accepted.
            due = datetime.now(UTC) + timedelta(seconds=3)
            sent = send_many(
                gw, 40, f"a{attempt}-", recipients=RECIPIENTS, scheduledFor=due.isoformat()
            )
            assert len(sent) == 40
            accepted += sent
            time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            held = _kill_holding_claims(gw.process, db_file)
        finally:
            gw.stop(kill=True)
        killed = time.monotonic()
        gw = start_gateway(env, cwd=tmp_path, port=port)
        gw.api_key = key
        if held:
            break
    try:
        assert held, "the gateway never died holding a claim"
        statuses = wait_final(gw, accepted, timeout=40)
    finally:
        gw.stop()
    # Delivered before the killed process's 60 s leases ran out (even on a loaded machine,
    # where the restart alone may take many seconds), because the new process took them back.
    assert time.monotonic() - killed < 55
    log = (tmp_path / f"gateway-{port}.log").read_text()
    assert '"claims_taken_back"' in log
    assert set(statuses.values()) == {"delivered"}
    engine = sa.create_engine(f"sqlite:///{db_file}")
    with engine.connect() as conn:
        submitted = conn.execute(sa.select(simulator_submissions.c.submit_key)).scalars().all()
        rcpt_ids = conn.execute(sa.select(recipients.c.id)).scalars().all()
        left = conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one()
    engine.dispose()
    # One carrier submission per recipient (a submit cut off by the kill is repeated with the
    # same key, which the carrier dedupes), and no job left behind.
    assert sorted(submitted) == sorted(rcpt_ids)
    assert len(rcpt_ids) == len(accepted) * RECIPIENTS
    assert left == 0
