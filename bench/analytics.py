"""The analytics routes against a large history: they must answer in milliseconds however
many messages lie behind them, on SQLite and PostgreSQL.

For each database: a fresh gateway database filled with

- counter rows for ``--accounts`` other accounts, both modes, ``--days`` days each (the
  rows the routes must not read), each row standing for some hundreds of messages;
- the measured account's own counters for the same days, standing for ``--per-day`` messages
  a day (so ``--days`` x ``--per-day`` messages in all: 400 x 3,000 = 1.2 million by default);
- ``--messages`` real message rows (one recipient each) of that account over the last 90 days,
  so the tables the routes do not read are not empty either.

Then, through the in-process app (the whole HTTP stack, authentication included), ``--rounds``
requests of ``GET /developers/analytics/overview`` over 90 days and of ``.../daily?days=90``,
with the median and 99th percentile of their wall time and the process CPU time per request;
and, for scale, the same 90-day totals recounted from the messages tables (what the routes
would cost without counters).

    python bench/analytics.py [--databases sqlite,postgresql]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/test] [--rounds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa

from msgine.server.api import create_app
from msgine.server.config import Settings
from msgine.server.runtime import Runtime, ensure_default_account
from msgine.server.storage import daily_message_counts
from msgine.server.storage._tables import accounts, messages, recipients

CHUNK = 20_000


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _counter_rows(
    account_ids: list[str], modes: tuple[str, ...], days: list[date], per_day: int
) -> Iterator[dict[str, Any]]:
    for account_id in account_ids:
        for mode in modes:
            for n, day in enumerate(days):
                sent = per_day + n % 7
                yield {
                    "account_id": account_id,
                    "mode": mode,
                    "channel": "sms",
                    "day": day,
                    "currency": "UGX",
                    "sent": sent,
                    "delivered": sent * 9 // 10,
                    "failed": sent // 20,
                    "cost": sent * 30,
                }


def _message_rows(account_id: str, count: int, now: datetime) -> Iterator[dict[str, Any]]:
    for n in range(count):
        at = now - timedelta(seconds=n * 90 * 86400 // max(count, 1))
        yield {
            "id": f"msg_bench{n:09d}",
            "account_id": account_id,
            "key_id": None,
            "mode": "test",
            "type": "transactional",
            "sender": None,
            "content": b"x" * 40,
            "encoding": "GSM-7",
            "segments": 1,
            "cost": 30,
            "currency": "UGX",
            "callback_url": None,
            "status": "delivered" if n % 20 else "failed",
            "scheduled_for": None,
            "created_at": at,
            "updated_at": at,
        }


def _recipient_rows(account_id: str, count: int, now: datetime) -> Iterator[dict[str, Any]]:
    for message in _message_rows(account_id, count, now):
        yield {
            "id": "rcp" + message["id"][3:],
            "message_id": message["id"],
            "account_id": account_id,
            "position": 0,
            "phone": b"x" * 40,
            "phone_index": f"{message['id'][-8:]:0>32}",
            "region": "UG",
            "status": message["status"],
            "updated_at": message["created_at"],
            "sent_at": message["created_at"],
        }


def fill(runtime: Runtime, account_id: str, args: argparse.Namespace) -> int:
    """Write the history; returns how many messages the measured account's counters stand for."""
    now = runtime.now()
    today = now.astimezone(UTC).date()
    days = [today - timedelta(days=n) for n in range(args.days)]
    others = [f"acc_other{n:05d}" for n in range(args.accounts)]

    def write_accounts(conn: sa.Connection) -> None:
        conn.execute(
            sa.insert(accounts),
            [{"id": a, "name": a, "settings": {}, "created_at": now} for a in others],
        )

    runtime.db.write(write_accounts)
    batches = [
        (daily_message_counts, _counter_rows(others, ("test", "live"), days, 300)),
        (daily_message_counts, _counter_rows([account_id], ("test",), days, args.per_day)),
        (messages, _message_rows(account_id, args.messages, now)),
        (recipients, _recipient_rows(account_id, args.messages, now)),
    ]
    for table, rows in batches:
        for chunk in _chunks(rows):
            runtime.db.write(lambda conn, t=table, c=chunk: conn.execute(sa.insert(t), c))
    return sum(args.per_day + n % 7 for n in range(args.days))


def _recount(conn: sa.Connection, account_id: str, start: datetime) -> Any:
    """The 90-day totals from the messages tables, as a gateway without counters would."""
    return conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.sum(sa.case((recipients.c.status == "delivered", 1), else_=0)),
            sa.func.sum(sa.case((recipients.c.status == "failed", 1), else_=0)),
        )
        .select_from(recipients.join(messages, messages.c.id == recipients.c.message_id))
        .where(
            messages.c.account_id == account_id,
            messages.c.mode == "test",
            messages.c.created_at >= start,
        )
    ).one()


def _quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


async def _time_requests(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], key: str, rounds: int
) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, CPU ms per request) of ``rounds`` requests, after a warm-up."""
    headers = {"X-Api-Key": key}
    for _ in range(10):
        assert (await client.get(path, params=params, headers=headers)).status_code == 200
    samples = []
    cpu = time.process_time()
    for _ in range(rounds):
        started = time.perf_counter()
        response = await client.get(path, params=params, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    cpu_ms = (time.process_time() - cpu) * 1000 / rounds
    p50, p99 = _quantiles(samples)
    return p50, p99, cpu_ms


async def measure(runtime: Runtime, args: argparse.Namespace, name: str) -> None:
    first = ensure_default_account(runtime)
    assert first is not None
    account_id = first.record["account_id"]
    started = time.perf_counter()
    represented = fill(runtime, account_id, args)
    counter_rows = runtime.db.read(
        lambda c: c.execute(sa.select(sa.func.count()).select_from(daily_message_counts)).scalar()
    )
    print(
        f"{name}: filled in {time.perf_counter() - started:.0f} s: {counter_rows:,} counter rows, "
        f"the measured account's standing for {represented:,} messages; "
        f"{args.messages:,} message rows"
    )
    today = runtime.now().astimezone(UTC).date()
    period = {"from": (today - timedelta(days=89)).isoformat(), "to": today.isoformat()}
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
        app.router.lifespan_context(app),
    ):
        for label, path, params in (
            ("overview, 90 days", "/api/v1/developers/analytics/overview", period),
            ("daily, days=90", "/api/v1/developers/analytics/daily", {"days": 90}),
            ("GET /healthz (no-op)", "/healthz", {}),
        ):
            p50, p99, cpu = await _time_requests(client, path, params, first.secret, args.rounds)
            print(f"  {label:<24} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  CPU {cpu:5.2f} ms/req")
    since = datetime.combine(today - timedelta(days=89), datetime.min.time(), UTC)
    samples = []
    for _ in range(5):
        began = time.perf_counter()
        runtime.db.read(lambda c: _recount(c, account_id, since))
        samples.append((time.perf_counter() - began) * 1000)
    print(
        f"  {'recount of ' + format(args.messages, ',') + ' message rows':<24} "
        f"p50 {statistics.median(samples):6.1f} ms (what the overview costs without counters)"
    )


@contextmanager
def _database(kind: str, admin_url: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    name = f"msgine_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--per-day", type=int, default=3000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for kind in args.databases.split(","):
        with tempfile.TemporaryDirectory() as tmp, _database(kind, args.postgres_url) as url:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                data_dir=Path(tmp) / "data",
                database_url=url,
                master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
                # The bench measures the routes, not the limits in front of them.
                rate_limit_per_key="1000000/second",
                rate_limit_per_account="1000000/second",
                rate_limit_per_ip="1000000/second",
            )
            runtime = Runtime.open(settings)
            try:
                asyncio.run(measure(runtime, args, kind))
            finally:
                runtime.close()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
