"""Storage: migrations match the schema, group commit, and the crypto envelope on both backends."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from msgine.server.runtime import Runtime
from msgine.server.storage import Database, metadata
from msgine.server.storage._database import migrations_config, newest_revision
from msgine.server.storage._tables import accounts
from support import make_settings, write_concurrently


def test_migrations_create_exactly_the_declared_schema(runtime: Any) -> None:
    with runtime.db.read_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    runtime = Runtime.open(make_settings(tmp_path))
    try:
        assert runtime.db.read(lambda c: c.exec_driver_sql("PRAGMA journal_mode").scalar()) == "wal"
        assert runtime.db.read(lambda c: c.exec_driver_sql("PRAGMA synchronous").scalar()) == 2
    finally:
        runtime.close()


def test_group_commit_isolates_a_failing_write(runtime: Any) -> None:
    """A failing write in a batch rolls back alone; the others commit."""
    now = runtime.now()

    def write_for(n: int) -> Any:
        def fn(conn: sa.Connection) -> str:
            conn.execute(
                sa.insert(accounts).values(id=f"acc_{n}", name=f"x{n}", settings={}, created_at=now)
            )
            if n == 7:
                raise ValueError("boom")
            return f"acc_{n}"

        return fn

    results = write_concurrently(runtime, write_for, 20)
    assert isinstance(results[7], ValueError)
    stored = set(runtime.db.read(lambda c: c.execute(sa.select(accounts.c.id)).scalars().all()))
    assert "acc_7" not in stored
    assert {f"acc_{n}" for n in range(20) if n != 7} <= stored


def test_migrating_twice_is_a_no_op(settings: Any) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.sqlalchemy_url)
    try:
        db.migrate()
        db.migrate()
        version = db.read(
            lambda c: c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        )
        assert version == _head_revision()
    finally:
        db.close()


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(migrations_config()).get_current_head()
    assert head is not None
    return head


def test_the_newest_revision_read_from_file_names_is_alembics_head() -> None:
    """Opening an up-to-date database skips alembic on the file names' word: they must agree."""
    assert newest_revision() == _head_revision()


def test_an_up_to_date_database_opens_without_loading_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = Database(url)
    db.migrate()
    db.close()
    probe = (
        "import sys\n"
        "from msgine.server.storage import Database\n"
        f"db = Database({url!r})\n"
        "db.migrate()\n"
        "db.close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.empty_database
def test_a_database_made_by_the_first_release_upgrades_in_place(settings: Any) -> None:
    """A deployment running the first schema, with data, gets the later indexes on its next
    start, and keeps its rows."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.sqlalchemy_url)
    try:
        db.migrate("0001")
        db.write(
            lambda conn: conn.execute(
                sa.insert(accounts).values(
                    id="acc_old", name="old", settings={}, created_at=datetime.now(UTC)
                )
            )
        )
        db.migrate()
        names = db.read(
            lambda c: {index["name"] for index in sa.inspect(c).get_indexes("messages")}
        )
        assert "ix_messages_unpurged" in names
        assert db.read(lambda c: c.execute(sa.select(accounts.c.name)).scalar()) == "old"
    finally:
        db.close()


async def test_database_outage_is_503_not_500(tmp_path: Path, postgres_url: str) -> None:
    """A lost database is the service's problem, not the client's: 503 with Retry-After."""
    import httpx
    import psycopg

    from msgine.server.api import create_app
    from msgine.server.runtime import ensure_default_account
    from support import PG_ADMIN_URL

    runtime = Runtime.open(make_settings(tmp_path, postgres_url))
    try:
        first = ensure_default_account(runtime)
        assert first is not None
        app = create_app(runtime)
        headers = {"X-Api-Key": first.secret}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://t",
        ) as client:
            assert (await client.get("/api/v1/messages", headers=headers)).status_code == 200
            name = postgres_url.rsplit("/", 1)[1]
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            response = await client.get("/api/v1/messages", headers=headers)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"]["code"] == "service_unavailable"
            ready = await client.get("/readyz")
            assert ready.status_code == 503
    finally:
        runtime.close()


class _Deadlock(Exception):
    sqlstate = "40P01"  # what psycopg reports for deadlock_detected


def test_a_deadlocked_write_runs_again(runtime: Any) -> None:
    """PostgreSQL aborts one side of a deadlock between two writers; that side is retried."""
    calls: list[int] = []
    now = runtime.now()

    def fn(conn: sa.Connection) -> str:
        calls.append(1)
        conn.execute(
            sa.insert(accounts).values(
                id=f"acc_d{len(calls)}", name="d", settings={}, created_at=now
            )
        )
        if len(calls) == 1:
            raise sa.exc.OperationalError("INSERT", {}, _Deadlock())
        return "ok"

    assert runtime.db.write(fn) == "ok"
    assert len(calls) == 2
    stored = runtime.db.read(lambda c: c.execute(sa.select(accounts.c.id)).scalars().all())
    assert "acc_d1" not in stored  # the aborted attempt left nothing behind
    assert "acc_d2" in stored


def test_a_persistent_failure_reaches_the_caller(runtime: Any) -> None:
    def fn(conn: sa.Connection) -> None:
        raise sa.exc.OperationalError("INSERT", {}, _Deadlock())

    with pytest.raises(sa.exc.OperationalError):
        runtime.db.write(fn)


def test_a_point_read_survives_its_connection_being_closed(
    tmp_path: Path, postgres_url: str
) -> None:
    """The key lookup keeps its connection open (no pool checkout, no pre-ping round trip);
    when the server closes it (a restart, an idle timeout), the read runs again on a fresh
    one instead of failing the request. Another failure still reaches the caller."""
    import psycopg

    from support import PG_ADMIN_URL

    db = Database(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    try:

        def backend(conn: sa.Connection) -> int:
            return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())

        # What ``aread(point=True)`` runs in the point-read thread; called here, on one thread.
        first = db._point_read(backend)
        assert db._point_read(backend) == first  # the same connection, kept
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        second = db._point_read(backend)
        assert second != first

        def broken(conn: sa.Connection) -> None:
            conn.execute(sa.text("SELECT no_such_column FROM accounts"))

        with pytest.raises(sa.exc.ProgrammingError):
            db._point_read(broken)
    finally:
        db.close()


def test_a_batch_reads_an_account_policy_once_and_sees_its_own_change(runtime: Any) -> None:
    """Sends of one account in one group commit share one policy read (a round trip each on
    PostgreSQL), but a policy change made through ``update_policy`` earlier in the same batch
    is seen by the writes after it, as if each had read the database."""
    from msgine.server.accounts import create_account, policy_of, update_policy
    from msgine.server.storage import batch_memo

    account = runtime.db.write(lambda conn: create_account(conn, "memo", runtime.now()))

    def batch(conn: sa.Connection) -> tuple[str, str, str]:
        before = policy_of(conn, account).timezone
        # Behind the memo's back: a second read would see this.
        conn.execute(
            sa.update(accounts)
            .where(accounts.c.id == account)
            .values(settings={"timezone": "Europe/London"})
        )
        again = policy_of(conn, account).timezone
        update_policy(conn, account, {"timezone": "Africa/Kampala"})
        return before, again, policy_of(conn, account).timezone

    assert runtime.db.write(batch) == ("UTC", "UTC", "Africa/Kampala")
    assert runtime.db.read(batch_memo) is None  # only inside the writer's transaction
    assert runtime.db.read(lambda conn: policy_of(conn, account).timezone) == "Africa/Kampala"


async def test_concurrent_point_reads_each_get_their_own_answer(postgres_url: str) -> None:
    """Point reads from a loop run in one thread and are answered in batches: each caller
    gets its own answer or its own error, and a caller that gave up does not stop the rest."""
    import asyncio

    db = Database(postgres_url.replace("postgresql://", "postgresql+psycopg://"))

    def echo(n: int) -> Any:
        def fn(conn: sa.Connection) -> int:
            if n % 7 == 3:
                raise ValueError(f"read {n}")
            return int(conn.execute(sa.text("SELECT :n"), {"n": n}).scalar_one())

        return fn

    try:
        abandoned = asyncio.ensure_future(db.aread(echo(0), point=True))
        abandoned.cancel()
        results = await asyncio.gather(
            *(db.aread(echo(n), point=True) for n in range(50)), return_exceptions=True
        )
        for n, result in enumerate(results):
            if n % 7 == 3:
                assert isinstance(result, ValueError) and str(result) == f"read {n}"
            else:
                assert result == n
    finally:
        db.close()
