"""Delivery cost alone: the worker draining a backlog, CPU and statements per message.

Fills a fresh SQLite gateway with ``--messages`` accepted sends (``serve --no-worker`` under
wrk), stops it, then runs the delivery worker in this process until every
recipient is final (submit to the simulator, its receipt, the status changes), with the
simulator's receipt delay at 0 so nothing waits. Prints the CPU time of this process (all its
threads) per delivered message; ``--statements`` also counts the SQL statements run, by kind
(the tracing itself costs CPU), and ``--profile FILE`` writes a cProfile of the drain
(``python -m pstats FILE``).

    python bench/worker_drain.py [--messages 5000] [--statements] [--profile drain.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from send_throughput import bench_env, bench_key, free_port, send_script, start, wrk

# Values in the traced SQL (sqlite3 traces statements with their parameters expanded).
_LITERAL = re.compile(r"'[^']*'|\d+(\.\d+)?|\bNULL\b")
FINAL = "('delivered', 'failed', 'rejected')"


def fill(env: dict[str, str], data: Path, messages: int) -> int:
    """Accept about ``messages`` sends with the worker off; returns how many were stored."""
    key = bench_key(env)
    port = free_port()
    proc = start(env, port, True)
    engine = sa.create_engine(f"sqlite:///{data / 'msgine.db'}")
    try:
        script = data / "send.lua"
        script.write_text(send_script(key))
        while _count(engine, "SELECT count(*) FROM messages") < messages:
            wrk(f"http://127.0.0.1:{port}/api/v1/messages/sms", 1, 16, script)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    stored = _count(engine, "SELECT count(*) FROM messages")
    engine.dispose()
    return stored


def _count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


async def drain(
    profile: cProfile.Profile | None, trace: bool
) -> tuple[float, float, Counter[str], int]:
    """Run the worker until nothing is left; (CPU s, wall s, statements, jobs claimed)."""
    from msgine.server.config import load_settings
    from msgine.server.logging import configure_logging
    from msgine.server.runtime import Runtime
    from msgine.server.worker import Worker

    settings = load_settings()
    configure_logging(level=settings.log_level)
    runtime = Runtime.open(settings, create=False)
    worker = Worker(runtime)
    await worker.fleet.refresh()
    statements: Counter[str] = Counter()

    def count(sql: str) -> None:
        statements[_LITERAL.sub("?", " ".join(sql.split()))[:100]] += 1

    # Direct statements run on the driver's cursor: count at the driver (sqlite3 trace).
    # Tracing costs about a fifth of the drain's CPU: only when asked.
    for engine in (runtime.db.read_engine, runtime.db.write_engine) if trace else ():
        sa.event.listen(engine, "connect", lambda dbapi, _rec: dbapi.set_trace_callback(count))
        engine.dispose()
    claimed = 0
    cpu, wall = time.process_time(), time.perf_counter()
    if profile is not None:
        profile.enable()
    idle = 0
    while idle < 3:  # receipts are due at once (delay 0); a few empty claims mean done
        done = await worker.run_once()
        claimed += done
        idle = idle + 1 if done == 0 else 0
    if profile is not None:
        profile.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await worker.fleet.stop_all()
    runtime.close()
    return cpu, wall, statements, claimed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile here")
    parser.add_argument("--statements", action="store_true", help="list the statements run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed to fill the backlog")
    data = Path(tempfile.mkdtemp(prefix="msgine-drain-"))
    env = bench_env(data, MSGINE_SIMULATOR_DLR_DELAY="0")
    try:
        stored = fill(env, data, args.messages)
        os.environ.update(env)
        profile = cProfile.Profile() if args.profile else None
        cpu, wall, statements, claimed = asyncio.run(drain(profile, args.statements))
        if profile is not None:
            profile.dump_stats(args.profile)
        engine = sa.create_engine(f"sqlite:///{data / 'msgine.db'}")
        waiting = _count(engine, f"SELECT count(*) FROM recipients WHERE status NOT IN {FINAL}")
        engine.dispose()
    finally:
        shutil.rmtree(data, ignore_errors=True)
    print(f"messages            : {stored} accepted, {waiting} not final after the drain")
    print(f"jobs claimed        : {claimed} ({claimed / stored:.2f} per message)")
    print(f"drain               : {wall:.2f} s, {stored / wall:.0f} messages/s")
    print(f"worker CPU          : {cpu / stored * 1e6:.0f} us per delivered message")
    if args.statements:
        total = sum(statements.values())
        print(f"SQL statements      : {total / stored:.1f} per message (sqlite3 trace)")
        for sql, n in statements.most_common():
            print(f"  {n / stored:5.2f}  {sql}")
    if waiting:
        sys.exit(1)


if __name__ == "__main__":
    main()
