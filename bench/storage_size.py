"""Bytes on disk per message, by table and index, on SQLite and PostgreSQL.

Sends N messages through the in-process API (one recipient, then ten recipients, a typical
one-time-code text), lets the worker deliver them all (submit, simulator receipt, status
changes), then measures what the database grew by, table by table and index by index:

- SQLite: the ``dbstat`` virtual table: the bytes in use of each table's and index's pages
  (what the pages hold, not their unused tails or free pages).
- PostgreSQL: ``pg_relation_size`` of each table (with its TOAST) and each index, after VACUUM.

The figure is "before retention": the rows a delivered message leaves until the retention purge.
Events are stored only when something receives them (msgine.server.events): by default nothing
subscribes, as for traffic without webhooks; ``--subscribed`` first creates one test-mode
endpoint subscribed to every event (its deliveries stay pending: nothing dispatches them here).
Each report also gives the total without ``simulator_submissions``, which only test traffic
(the simulator carrier) writes.

    python bench/storage_size.py [--messages 2000] [--database-url postgresql://...] [--subscribed]
                                 [--steady]

``--steady`` measures what a second round of N messages adds after a first round and VACUUM:
on PostgreSQL the space the first round's old row versions and emptied job pages left is
reused, as in a database that has been running for a while.

The PostgreSQL database must be a throwaway one: each measurement empties its public schema.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import sqlalchemy as sa

from msgine.server.api import create_app
from msgine.server.audit import Actor
from msgine.server.config import Settings
from msgine.server.runtime import Runtime, ensure_default_account
from msgine.server.webhooks import create_endpoint
from msgine.server.worker import Worker

TEXT = "Your MsGine verification code is 482913. It expires in 10 minutes."


def sizes(runtime: Runtime) -> dict[str, int]:
    """Bytes per table and index (name -> bytes)."""
    if runtime.db.is_sqlite:
        rows = runtime.db.read(
            lambda conn: conn.exec_driver_sql(
                "SELECT name, SUM(pgsize - unused) FROM dbstat GROUP BY name"
            ).all()
        )
        return {name: int(size) for name, size in rows}
    engine = sa.create_engine(
        runtime.settings.database_url.get_secret_value().replace(  # type: ignore[union-attr]
            "postgresql://", "postgresql+psycopg://"
        ),
        isolation_level="AUTOCOMMIT",
    )
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM")
        rows = conn.exec_driver_sql(
            "SELECT c.relname, pg_relation_size(c.oid)"
            " + COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0)"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')"
        ).all()
    engine.dispose()
    return {name: int(size) for name, size in rows}


async def send_and_deliver(
    runtime: Runtime,
    count: int,
    recipients: int,
    *,
    subscribed: bool = False,
    warm_up: Callable[[], object] | None = None,
) -> None:
    """Send ``count`` messages and deliver them; with ``warm_up``, a first round of as many
    (to other numbers) comes before, then ``warm_up()`` runs."""
    first = ensure_default_account(runtime)
    key = first.secret if first is not None else None
    if first is None or key is None:
        raise SystemExit("use a fresh database")
    if subscribed:
        account_id, now = first.record["account_id"], runtime.now()
        runtime.db.write(
            lambda conn: create_endpoint(
                conn,
                runtime.vault,
                Actor(name="bench"),
                account_id=account_id,
                mode="test",
                url="https://hooks.example.com/msgine",
                subscribed=[],
                description=None,
                now=now,
            )
        )
    app = create_app(runtime)
    worker = Worker(runtime)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
        app.router.lifespan_context(app),
    ):
        for first_number in (0, count) if warm_up else (0,):
            if first_number:
                warm_up()
            sent = 0
            while sent < count:
                batch = min(50, count - sent)

                async def one(n: int) -> None:
                    to = [
                        f"+25670{(n * recipients + r) % 10_000_000:07d}" for r in range(recipients)
                    ]
                    r = await client.post(
                        "/api/v1/messages/sms",
                        json={"to": to, "message": TEXT},
                        headers={"X-Api-Key": key},
                    )
                    assert r.status_code == 201, r.text

                await asyncio.gather(*(one(first_number + sent + n) for n in range(batch)))
                sent += batch
            await asyncio.sleep(runtime.settings.simulator_dlr_delay)
            while await worker.run_once():
                pass


def settings_for(tmp: Path, database_url: str | None) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp / "data",
        database_url=database_url,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        simulator_dlr_delay=0,
        rate_limit_per_key="1000000/minute",
        rate_limit_per_account="1000000/minute",
        rate_limit_per_ip="1000000/minute",
    )


def empty(database_url: str) -> None:
    engine = sa.create_engine(
        database_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def measure(
    database_url: str | None, count: int, recipients: int, subscribed: bool, steady: bool = False
) -> dict[str, int]:
    if database_url:
        empty(database_url)
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime.open(settings_for(Path(tmp), database_url))
        try:
            before = sizes(runtime)

            def warm_up() -> None:  # the first round leaves what a running database reuses
                before.update(sizes(runtime))

            asyncio.run(
                send_and_deliver(
                    runtime,
                    count,
                    recipients,
                    subscribed=subscribed,
                    warm_up=warm_up if steady else None,
                )
            )
            after = sizes(runtime)
        finally:
            runtime.close()
    return {name: after[name] - before.get(name, 0) for name in after}


def table_of(runtime_names: dict[str, int]) -> Callable[[str], str]:
    """Index name -> its table's name (by the naming convention's prefixes)."""
    tables = sorted((n for n in runtime_names if not n.startswith(("ix_", "pk_", "uq_"))), key=len)

    def owner(name: str) -> str:
        for table in reversed(tables):
            if table in name:
                return table
        return name

    return owner


def report(label: str, grown: dict[str, int], count: int) -> None:
    total = sum(grown.values())
    simulator = sum(size for name, size in grown.items() if "simulator_submissions" in name)
    print(f"\n{label}: {total / count:,.0f} bytes per message ({count} messages)")
    print(
        f"  without simulator_submissions (test traffic only): {(total - simulator) / count:,.0f}"
    )
    for name, size in sorted(grown.items(), key=lambda item: -item[1]):
        if size > 0:
            print(f"  {name:45s} {size / count:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--subscribed", action="store_true", help="one endpoint gets every event")
    parser.add_argument(
        "--steady",
        action="store_true",
        help="measure a second round of N messages, after a first one and VACUUM (steady state)",
    )
    args = parser.parse_args()
    databases = [None] + ([args.database_url] if args.database_url else [])
    for url in databases:
        name = "PostgreSQL" if url else "SQLite"
        for recipients in (1, 10):
            count = args.messages if recipients == 1 else max(1, args.messages // 10)
            grown = measure(url, count, recipients, args.subscribed, args.steady)
            subscriber = ", one subscribed endpoint" if args.subscribed else ""
            subscriber += ", steady state (second round)" if args.steady else ""
            report(f"{name}, {recipients} recipient(s){subscriber}", grown, count)


if __name__ == "__main__":
    main()
