"""Periodic work against a growing history: it must cost the same with a thousand rows
behind it or a million.

- Claims: a burst of sends leaves tens of thousands of submit jobs, and finished webhook
  deliveries accumulate. For each size, that many due jobs (two kinds, as the worker has) and
  as many finished deliveries plus 100 pending ones; the time of one claim of 100 rows by the
  worker and by the dispatcher (median of 20, each rolled back).
- Retention: purged messages stay (without personal data) for statistics, and idempotency keys
  for their retention period. For each size, that many purged messages (one recipient, two
  events each) and stored idempotency keys, plus 100 old messages due for purging; the time of
  the hourly purge of the account, one write transaction (on SQLite no send commits meanwhile).

    python bench/history_scaling.py [--sizes 1000,10000,100000] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from msgine.server.carriers.simulator import DLR_JOB
from msgine.server.compliance._retention import purge_account
from msgine.server.config import Settings
from msgine.server.messages._service import SUBMIT_JOB
from msgine.server.runtime import Runtime
from msgine.server.storage._engine import start_write
from msgine.server.storage._outbox import Claim
from msgine.server.storage._tables import (
    accounts,
    events,
    idempotency_keys,
    jobs,
    messages,
    recipients,
    webhook_deliveries,
    webhook_endpoints,
)
from msgine.server.webhooks._dispatch import _CLAIM as DELIVERY_CLAIM
from msgine.server.worker import Worker

LEASE = timedelta(seconds=60)


def fill(runtime: Runtime, size: int) -> None:
    now = runtime.now()
    old = now - timedelta(hours=1)

    def write(conn: sa.Connection) -> None:
        conn.execute(
            sa.insert(accounts).values(id="acc_bench", name="bench", settings={}, created_at=now)
        )
        conn.execute(
            sa.insert(webhook_endpoints).values(
                id="whe_bench",
                account_id="acc_bench",
                url="https://example.test/hook",
                events=[],
                secret=b"",
                enabled=True,
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            sa.insert(jobs),
            [
                {
                    "kind": SUBMIT_JOB if n % 2 else DLR_JOB,
                    "ref": f"rcp_{n:08d}",
                    "due_at": old + timedelta(milliseconds=n),
                    "attempts": 0,
                    "created_at": old,
                }
                for n in range(size)
            ],
        )
        conn.execute(
            sa.insert(events),
            [
                {
                    "id": f"evt_{n:08d}",
                    "account_id": "acc_bench",
                    "type": "message.sent",
                    "body": b"{}",
                    "created_at": old,
                }
                for n in range(size + 100)
            ],
        )
        conn.execute(
            sa.insert(webhook_deliveries),
            [
                {
                    "id": f"whd_{n:08d}",
                    "account_id": "acc_bench",
                    "event_id": f"evt_{n:08d}",
                    "endpoint_id": "whe_bench",
                    "status": "pending" if n >= size else "delivered",
                    "attempts": 1,
                    "next_attempt_at": old if n >= size else None,
                    "completed_at": None if n >= size else old,
                    "created_at": old,
                }
                for n in range(size + 100)
            ],
        )

    runtime.db.write(write)


def fill_history(runtime: Runtime, size: int) -> None:
    """``size`` purged messages and idempotency keys, and 100 old messages not yet purged."""
    now = runtime.now()
    old = now - timedelta(days=60)

    def write(conn: sa.Connection) -> None:
        rows = []
        for n in range(size + 100):
            purged = n < size
            rows.append(
                {
                    "id": f"msg_{n:08d}",
                    "account_id": "acc_bench",
                    "mode": "test",
                    "type": "transactional",
                    "content": None if purged else b"text",
                    "encoding": "GSM-7",
                    "segments": 1,
                    "cost": 30,
                    "currency": "UGX",
                    "status": "delivered",
                    "created_at": old + timedelta(milliseconds=n),
                    "updated_at": old,
                    "purged_at": old + timedelta(days=31) if purged else None,
                }
            )
        conn.execute(sa.insert(messages), rows)
        conn.execute(
            sa.insert(recipients),
            [
                {
                    "id": f"rcp_{n:08d}",
                    "message_id": row["id"],
                    "account_id": "acc_bench",
                    "position": 0,
                    "phone_index": "unlinked" if row["purged_at"] else f"ix{n}",
                    "status": "delivered",
                    "updated_at": old,
                }
                for n, row in enumerate(rows)
            ],
        )
        conn.execute(
            sa.insert(events),
            [
                {
                    "id": f"evt_m{n:08d}_{kind}",
                    "account_id": "acc_bench",
                    "type": f"message.{kind}",
                    "message_id": row["id"],
                    "created_at": row["created_at"],
                    "purged_at": row["purged_at"],
                }
                for n, row in enumerate(rows)
                for kind in ("sent", "delivered")
            ],
        )
        conn.execute(
            sa.insert(idempotency_keys),
            [
                {
                    "account_id": "acc_bench",
                    "key": f"key-{n}",
                    "request_hash": "0" * 64,
                    "message_id": f"msg_young_{n:08d}",
                    "response": b"{}",
                    "created_at": now,
                    "expires_at": now + timedelta(days=1),
                }
                for n in range(size)
            ],
        )

    runtime.db.write(write)


def time_purge(runtime: Runtime) -> float:
    """Milliseconds of one account's purge (it purges the 100 old messages)."""
    with runtime.db.write_engine.connect() as conn:
        start_write(conn)
        started = time.perf_counter()
        purged = purge_account(conn, "acc_bench", now=runtime.now())
        elapsed = (time.perf_counter() - started) * 1000
        conn.rollback()
    assert purged.messages == 100, purged
    return elapsed


def time_claim(runtime: Runtime, claim: Claim) -> float:
    """Median milliseconds of one claim of 100 rows, rolled back each time."""
    timings = []
    for _ in range(20):
        with runtime.db.write_engine.connect() as conn:
            start_write(conn)
            started = time.perf_counter()
            rows = claim(conn, now=runtime.now(), lease=LEASE, limit=100)
            timings.append((time.perf_counter() - started) * 1000)
            conn.rollback()
        assert len(rows) == 100, len(rows)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print(f"database: {'PostgreSQL' if args.database_url else 'SQLite'}; milliseconds")
    print(f"{'rows':>10} {'job claim':>10} {'delivery claim':>15} {'retention purge':>16}")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="msgine-claims-") as data:
            runtime = open_runtime(Path(data), args.database_url)
            try:
                empty(runtime)  # a PostgreSQL database outlives the run
                fill(runtime, size)
                if args.database_url:
                    runtime.db.write(lambda conn: conn.exec_driver_sql("ANALYZE"))
                job_ms = time_claim(runtime, Worker(runtime)._claim_statement())
                delivery_ms = time_claim(runtime, DELIVERY_CLAIM)
                fill_history(runtime, size)
                if args.database_url:
                    runtime.db.write(lambda conn: conn.exec_driver_sql("ANALYZE"))
                purge_ms = time_purge(runtime)
            finally:
                runtime.close()
        print(f"{size:>10} {job_ms:>10.2f} {delivery_ms:>15.2f} {purge_ms:>16.1f}")


#: One master key for the whole run: a PostgreSQL database keeps its wrapped data keys.
MASTER_KEY = base64.b64encode(os.urandom(32)).decode()


def open_runtime(data: Path, database_url: str | None) -> Runtime:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=data, database_url=database_url, master_key=MASTER_KEY
    )
    return Runtime.open(settings)


def empty(runtime: Runtime) -> None:
    """Remove what an earlier size filled."""

    def write(conn: sa.Connection) -> None:
        tables = (webhook_deliveries, events, webhook_endpoints, jobs, idempotency_keys)
        for table in (*tables, recipients, messages):
            conn.execute(sa.delete(table))
        conn.execute(sa.delete(accounts).where(accounts.c.id == "acc_bench"))

    runtime.db.write(write)


if __name__ == "__main__":
    main()
