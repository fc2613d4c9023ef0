"""Soak: minutes of steady mixed traffic against ``msgine serve``; RSS and p99 per minute.

Starts ``msgine serve`` (SQLite, worker in process, or --database-url) on a fresh data
directory, a local HTTPS webhook receiver (``webhook_throughput.ReceiverProcess``) subscribed to
every event, and drives a fixed request rate of mixed traffic, each request a new recipient:

- 60% sends, 25% reads of a message sent earlier, 5% history pages, 10% inbound SMS through
  the simulator (``POST /simulator/inbound``; STOP/START among them),
- every status change and inbound message fans out to the receiver as signed webhooks.

Every interval (a minute by default) it prints the server's RSS (``/proc/PID/status``), the
interval's request count, p50 and p99 latency, errors, and webhooks received. Both RSS and p99
should stay flat: a line that keeps climbing is a leak or work that grows with history.

    python bench/soak.py [--minutes 10] [--rate 60] [--interval 60] [--database-url URL]
                         [--set MSGINE_NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trustme
from send_throughput import bench_env, create_key, free_port, start
from webhook_throughput import ReceiverProcess

EVENTS = ["message.sent", "message.delivered", "message.failed", "message.received"]
INBOUND = ["Hello", "What time?", "STOP", "START", "HELP", "Thanks"]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Window:
    """What one interval saw."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def note(self, kind: str, seconds: float, ok: bool) -> None:
        self.latencies.append(seconds)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if not ok:
            self.errors += 1

    def percentile(self, pct: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * pct))] * 1000


class Traffic:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.sent_ids: list[str] = []
        self.counter = 0
        self.window = Window()

    async def one(self) -> None:
        started = time.perf_counter()
        try:
            kind, ok = await self._request()
        except httpx.HTTPError as exc:  # named, so a client-side pool timeout is told apart
            kind, ok = f"error:{type(exc).__name__}", False
        self.window.note(kind, time.perf_counter() - started, ok)

    async def _request(self) -> tuple[str, bool]:
        self.counter += 1
        n = self.counter
        roll = random.random()
        if roll < 0.60 or not self.sent_ids:
            kind = "send"
            r = await self.client.post(
                "/api/v1/messages/sms",
                json={"to": f"+25670{n % 10_000_000:07d}", "message": f"Your code is {n:06d}"},
            )
            if r.status_code == 201:
                self.sent_ids.append(r.json()["id"])
                del self.sent_ids[:-1000]  # read recent ones; keep this list bounded too
            ok = r.status_code == 201
        elif roll < 0.85:
            kind = "read"
            r = await self.client.get(f"/api/v1/messages/{random.choice(self.sent_ids)}")
            ok = r.status_code == 200
        elif roll < 0.90:
            kind = "history"
            r = await self.client.get("/api/v1/messages", params={"page": 1, "limit": 20})
            ok = r.status_code == 200
        else:
            kind = "inbound"
            r = await self.client.post(
                "/api/v1/simulator/inbound",
                json={"from": f"+25678{n % 10_000_000:07d}", "message": random.choice(INBOUND)},
            )
            ok = r.status_code in (200, 201, 202)
        return kind, ok


def report(
    traffic: Traffic, pid: int, receiver: ReceiverProcess, start_at: float
) -> tuple[float, float]:
    """Print the interval's line and start a new one; (RSS, p99) of the interval."""
    window, traffic.window = traffic.window, Window()
    rss = rss_mib(pid)
    p99 = window.percentile(0.99)
    hooks = receiver.stats().get("count", "?")
    mix = " ".join(f"{k}={v}" for k, v in sorted(window.kinds.items()))
    print(
        f"{(time.monotonic() - start_at) / 60:5.1f} {rss:8.1f} {len(window.latencies):8d} "
        f"{window.percentile(0.5):7.1f} {p99:7.1f} {window.errors:6d} {hooks!s:>8}  {mix}",
        flush=True,
    )
    return rss, p99


async def drive(
    base: str, key: str, pid: int, receiver: ReceiverProcess, args: argparse.Namespace
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=30, limits=limits
    ) as client:
        r = await client.post("/api/v1/webhooks", json={"url": receiver.url, "events": EVENTS})
        r.raise_for_status()
        traffic = Traffic(client)
        in_flight: set[asyncio.Task[None]] = set()
        start_at = time.monotonic()
        end_at = start_at + args.minutes * 60
        next_report = start_at + args.interval
        rows: list[tuple[float, float]] = []
        print(
            f"{'min':>5} {'RSS MiB':>8} {'requests':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'errors':>6} {'webhooks':>8}  mix"
        )
        tick = 1 / args.rate
        due = start_at
        while time.monotonic() < end_at:
            due += tick
            task = asyncio.create_task(traffic.one())
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if time.monotonic() >= next_report:
                rows.append(report(traffic, pid, receiver, start_at))
                next_report += args.interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        if in_flight:
            await asyncio.wait(in_flight, timeout=30)
        rows.append(report(traffic, pid, receiver, start_at))  # the last (partial) interval
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        print(
            f"\nRSS {first[0]:.1f} -> {last[0]:.1f} MiB ({last[0] - first[0]:+.1f}); "
            f"p99 {first[1]:.1f} -> {last[1]:.1f} ms; "
            f"median p99 {statistics.median(r[1] for r in rows):.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=60, help="requests per second")
    parser.add_argument("--interval", type=float, default=60, help="seconds per report line")
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MSGINE_NAME=VALUE",
        help="a gateway setting for this run (repeatable)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        receiver = ReceiverProcess(workdir, trustme.CA())
        env = bench_env(
            workdir / "data",
            MSGINE_WEBHOOK_ALLOW_PRIVATE="true",
            MSGINE_WEBHOOK_ALLOWED_PORTS="1-65535",
            MSGINE_WEBHOOK_CA_BUNDLE=str(receiver.ca_file),
        )
        if args.database_url:
            env["MSGINE_DATABASE_URL"] = args.database_url
        env.update(setting.split("=", 1) for setting in args.set)
        port = free_port()
        first = start(env, port, no_worker=True)  # the first start makes the account
        first.terminate()
        first.wait(timeout=30)
        secret = json.loads(create_key(env, check=True).stdout)["key"]
        server = start(env, port, no_worker=False)
        try:
            asyncio.run(drive(f"http://127.0.0.1:{port}", secret, server.pid, receiver, args))
        finally:
            server.terminate()
            server.wait(timeout=30)
            receiver.close()


if __name__ == "__main__":
    sys.exit(main())
