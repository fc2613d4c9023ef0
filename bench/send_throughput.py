"""Send throughput: accepted sends/s against the same server's no-op (/healthz) rate.

Starts ``msgine serve`` on a fresh data directory (SQLite by default; --postgres for a fresh
PostgreSQL database, dropped afterwards, or --database-url for one of yours; --processes N for
``serve --processes N``; --worker-process for ``serve --no-worker`` beside a ``msgine worker``
process, both processes' CPU counted), creates a key, then drives ``POST /api/v1/messages/sms`` and ``GET /healthz`` with
32 concurrent connections using wrk (or a Python client when wrk is not installed). Afterwards
it counts the messages in the database: every 201 must be stored.

Besides the rates, it reads the server's own CPU time (all its threads, from /proc) per no-op
request and per accepted message; with the worker in process, the message's share includes
delivering it (the bench waits for every message to be final before the next round). Rates on a
shared machine move with the neighbours' load; CPU per request does not. The two ratios differ
because the COMMIT's fsync runs in a thread beside the event loop: its CPU counts, but it does
not hold up the loop.

On PostgreSQL it also reads the CPU time of the database's own backend processes (when they
run on this machine), per accepted message: the database's share of the cost.

    python bench/send_throughput.py [--seconds 10] [--rounds 3] [--connections 32]
                                    [--no-worker | --worker-process]
                                    [--postgres [ADMIN_URL] | --database-url URL] [--processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import sqlalchemy as sa

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
-- A different recipient on every request, as real traffic has: no cache helps.
request = function()
  local body = string.format('{"to": "+2567015%%05d", "message": "Your code is %%06d"}',
                             math.random(0, 99998), math.random(0, 999999))
  return wrk.format(nil, nil, nil, body)
end
function response(status, headers, body) if status == 201 then created = created + 1 end end
"""
# What every bench's wrk script ends with: its own ``response`` counts the successes in
# ``created``; this prints them with the latency percentiles for ``wrk()`` to read.
COUNTING_LUA = """
created = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("created") end
  io.write(string.format("CREATED %d\\n", total))
  io.write(string.format("P50 %f\\nP99 %f\\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def bench_env(data: Path, **settings: str) -> dict[str, str]:
    """This environment without its MSGINE_ settings, plus a gateway in ``data`` whose limits
    never refuse bench traffic, and ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSGINE_")}
    env.update(
        MSGINE_DATA_DIR=str(data),
        MSGINE_RATE_LIMIT_PER_KEY="100000000/minute",
        MSGINE_RATE_LIMIT_PER_ACCOUNT="100000000/minute",
        MSGINE_RATE_LIMIT_PER_IP="100000000/minute",
        MSGINE_RATE_LIMIT_PER_RECIPIENT="100000000/hour",
        MSGINE_DAILY_CAP="0",  # on by default (10,000 a day): a bench round sends more
        MSGINE_LOG_LEVEL="WARNING",
    )
    env.update(settings)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def send_script(key: str) -> str:
    """The wrk script of sends with ``key``: a different recipient on every request."""
    return LUA % key + COUNTING_LUA


def bench_key(env: dict[str, str]) -> str:
    """A key of the gateway in ``env``; a first ``serve`` creates the account if there is none."""
    key_out = create_key(env, check=False)
    if key_out.returncode != 0:  # no account yet: the first serve creates it
        start(env, free_port(), True).terminate()
        time.sleep(1)
        key_out = create_key(env, check=True)
    return str(json.loads(key_out.stdout)["key"])


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A ``msgine worker`` process for the gateway in ``env``."""
    return subprocess.Popen(
        [sys.executable, "-m", "msgine", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def create_key(env: dict[str, str], *, check: bool) -> subprocess.CompletedProcess[str]:
    command = ["keys", "create", "--json", "--rate-limit", "100000000/minute"]
    return subprocess.run(
        [sys.executable, "-m", "msgine", *command],
        env=env,
        capture_output=True,
        text=True,
        check=check,
    )


def start(
    env: dict[str, str], port: int, no_worker: bool, processes: int = 1
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "msgine", "serve", "--port", str(port)]
    if no_worker:
        args.append("--no-worker")
    if processes > 1:
        args += ["--processes", str(processes)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Every process listening before the load starts: wrk keeps its connections for the
    # whole round, and the kernel spreads them only over the sockets listening when they open.
    for _ in range(600):
        if listeners(port) >= processes:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("gateway did not start")


def listeners(port: int) -> int:
    """Sockets listening on ``port`` (from /proc/net/tcp; 1 where that is missing)."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return 1
    wanted = f":{port:04X}"
    return sum(1 for line in table if line.split()[1].endswith(wanted) and line.split()[3] == "0A")


def wrk(url: str, seconds: int, connections: int, script: Path | None) -> dict[str, float]:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", str(script)]
    run = subprocess.run([*args, url], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"wrk failed: {run.stderr.strip()[:500]}")
    out = run.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    result = {"rate": rate, "requests": requests}
    for name in ("CREATED", "P50", "P99"):
        match = re.search(rf"^{name} ([\d.]+)", out, re.M)
        if match:
            result[name.lower()] = float(match.group(1))
    if "p50" not in result:
        result["p50"] = _wrk_percentile(out, "50%")
        result["p99"] = _wrk_percentile(out, "99%")
    return result


def _wrk_percentile(out: str, label: str) -> float:
    match = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value if unit == "ms" else value * 1000


async def python_load(
    url: str, seconds: int, connections: int, key: str | None
) -> dict[str, float]:
    latencies: list[float] = []
    created = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def loop() -> None:
            nonlocal created
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                if key:
                    body = {
                        "to": f"+2567015{random.randrange(99999):05d}",
                        "message": f"Your code is {random.randrange(1000000):06d}",
                    }
                    r = await client.post(
                        url, json=body, headers={"Authorization": f"Bearer {key}"}
                    )
                    created += r.status_code == 201
                else:
                    await client.get(url)
                latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(loop() for _ in range(connections)))
    q = statistics.quantiles(latencies, n=100)
    return {
        "rate": len(latencies) / seconds,
        "requests": len(latencies),
        "p50": q[49],
        "p99": q[98],
        "created": created,
    }


def server_cpu(pid: int) -> float:
    """CPU seconds the server process and its API processes (all their threads) have used;
    NaN where /proc is missing.

    Unlike request rates, this is not lowered by a neighbour's load on a shared machine (time
    the hypervisor steals is not charged), so the CPU per request compares rounds fairly."""
    return process_cpu(pid) + sum(process_cpu(child) for child in children(pid))


def process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


def database_cpu(engine: sa.Engine) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the bench's database (not the bench's
    own connection); empty on SQLite or when the server runs elsewhere."""
    if engine.dialect.name != "postgresql":
        return {}
    with engine.connect() as conn:
        pids = conn.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalars()
        found = {pid: process_cpu(pid) for pid in pids}
    return {pid: cpu for pid, cpu in found.items() if cpu == cpu}  # NaN: not on this machine


def database_cpu_since(engine: sa.Engine, before: dict[int, float]) -> float:
    after = database_cpu(engine)
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=PG_ADMIN_URL,
        default=None,
        metavar="ADMIN_URL",
        help=f"a fresh PostgreSQL database made through ADMIN_URL (default {PG_ADMIN_URL})",
    )
    parser.add_argument("--processes", type=int, default=1, help="serve --processes N")
    parser.add_argument("--no-worker", action="store_true")
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="serve --no-worker beside a separate `msgine worker` process (both measured)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.postgres:
        with fresh_database(args.postgres) as url:
            run(args, url)
    else:
        run(args, args.database_url)


PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"msgine_bench_{os.getpid()}"
    admin = sa.create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(args: argparse.Namespace, database_url: str | None) -> None:

    data = Path(tempfile.mkdtemp(prefix="msgine-bench-"))
    env = bench_env(data)
    if database_url:
        env["MSGINE_DATABASE_URL"] = database_url
    key = bench_key(env)
    port = free_port()
    proc = start(env, port, args.no_worker or args.worker_process, args.processes)
    worker = start_worker(env) if args.worker_process else None
    pids = [proc.pid] + ([worker.pid] if worker else [])
    base = f"http://127.0.0.1:{port}"
    use_wrk = shutil.which("wrk") is not None
    url = database_url or f"sqlite:///{data / 'msgine.db'}"
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    noops: list[dict[str, float]] = []
    sends: list[dict[str, float]] = []
    drain = float("nan")
    try:
        script = data / "send.lua"
        script.write_text(send_script(key))
        if use_wrk:
            wrk(f"{base}/healthz", 2, args.connections, None)  # warm up

        def load(url: str, key: str | None) -> dict[str, float]:
            if use_wrk:
                return wrk(url, args.seconds, args.connections, script if key else None)
            return asyncio.run(python_load(url, args.seconds, args.connections, key))

        # Rounds alternate, and each side keeps its best: on a shared machine, a neighbour's
        # burst then lowers one round, not the ratio.
        for _round in range(args.rounds):
            before = sum(server_cpu(pid) for pid in pids)
            noops.append(load(f"{base}/healthz", None))
            between = sum(server_cpu(pid) for pid in pids)
            backends = database_cpu(engine)
            sends.append(load(f"{base}/api/v1/messages/sms", key))
            if not args.no_worker:
                # The worker delivers the round's messages before the next no-op round: measured
                # meanwhile, that round would be slowed by it and flatter the ratio. Its CPU
                # counts towards the sends: accepting and delivering are one cost.
                drain = wait_until_final(engine, timeout=600)
            after = sum(server_cpu(pid) for pid in pids)
            sends[-1]["db_cpu"] = database_cpu_since(engine, backends) / max(
                sends[-1].get("created", 0), 1
            )
            noops[-1]["cpu"] = (between - before) / max(noops[-1]["requests"], 1)
            sends[-1]["cpu"] = (after - between) / max(sends[-1].get("created", 0), 1)
    finally:
        for running in (proc, worker):
            if running is not None:
                running.terminate()
                running.wait(timeout=30)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one()
    engine.dispose()
    noop = max(noops, key=lambda r: r["rate"])
    send = max(sends, key=lambda r: r["rate"])
    created = sum(int(r.get("created", 0)) for r in sends)
    print(
        f"load generator      : {'wrk' if use_wrk else 'python httpx'}, {args.connections} "
        f"connections, {args.rounds} x {args.seconds} s per side, best round shown"
    )
    print(
        f"database            : "
        f"{'PostgreSQL' if database_url else 'SQLite (WAL, synchronous=FULL)'}"
    )
    print(f"API processes       : {args.processes}")
    print(
        "worker              : "
        + ("none" if args.no_worker else "own process" if args.worker_process else "in process")
    )
    print(
        f"no-op /healthz      : {noop['rate']:.0f} req/s  p50 {noop['p50']:.2f} ms  "
        f"p99 {noop['p99']:.2f} ms   (rounds: {_rates(noops)})"
    )
    print(
        f"sends (201)         : {send['rate']:.0f} req/s  p50 {send['p50']:.2f} ms  "
        f"p99 {send['p99']:.2f} ms   (rounds: {_rates(sends)})"
    )
    ratios = [s["rate"] / n["rate"] for n, s in zip(noops, sends, strict=True)]
    print(
        f"send / no-op ratio  : {send['rate'] / noop['rate']:.1%}  best against best (goal >= 40%)"
    )
    print(
        f"                      {statistics.median(ratios):.1%}  median of each round against its "
        f"own no-op round ({', '.join(f'{r:.0%}' for r in ratios)})"
    )
    print(
        f"201 responses       : {created}; messages stored: {stored}  "
        f"({'OK' if stored >= created else 'LOST'})"
    )
    if not args.no_worker:
        print(f"delivery backlog    : every message final {drain:.1f} s after the last round")
    noop_cpu = statistics.median(r["cpu"] for r in noops)
    send_cpu = statistics.median(r["cpu"] for r in sends)
    print(
        f"server CPU          : no-op {noop_cpu * 1e6:.0f} us per request; send "
        f"{send_cpu * 1e6:.0f} us per accepted message "
        f"({'accepting it' if args.no_worker else 'accepting and delivering it'}); medians"
    )
    print(f"                      no-op / send: {noop_cpu / send_cpu:.1%}")
    if database_url:
        db_cpu = statistics.median(r["db_cpu"] for r in sends)
        print(f"PostgreSQL CPU      : {db_cpu * 1e6:.0f} us per accepted message (its backends)")
    shutil.rmtree(data, ignore_errors=True)


def _rates(results: list[dict[str, float]]) -> str:
    return ", ".join(f"{r['rate']:.0f}" for r in results)


FINAL = "('delivered', 'failed', 'rejected')"


def wait_until_final(engine: sa.Engine, timeout: float) -> float:
    """Seconds until every stored recipient has a final status (the worker's backlog)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with engine.connect() as conn:
            waiting = conn.execute(
                sa.text(f"SELECT count(*) FROM recipients WHERE status NOT IN {FINAL}")
            ).scalar_one()
        if waiting == 0:
            return time.perf_counter() - started
        time.sleep(0.5)
    return float("inf")


if __name__ == "__main__":
    main()
