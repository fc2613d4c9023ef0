"""Direct statements behave like ``Connection.execute`` on both backends: same types in and
out, same transaction, and they refuse what they cannot compile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from msgine.server.storage import one_of
from msgine.server.storage._direct import Direct
from msgine.server.storage._tables import accounts, jobs
from support import write_concurrently

_INSERT_ACCOUNT = Direct(accounts.insert())
_ACCOUNT = Direct(sa.select(accounts).where(accounts.c.id == sa.bindparam("id")))
_NAMES = Direct(sa.select(accounts.c.name).order_by(accounts.c.name))
_RENAME = Direct(
    sa.update(accounts).where(
        accounts.c.id == sa.bindparam("account_id"), accounts.c.name != "frozen"
    )
)
_INSERT_JOB = Direct(jobs.insert())
_JOB_ATTEMPTS = Direct(sa.select(jobs.c.attempts).where(jobs.c.ref == sa.bindparam("ref")))


def _account(n: int, now: datetime, name: str | None = None) -> dict[str, Any]:
    return {
        "id": f"acc_direct_{n}",
        "name": name or f"shop {n}",  # account names are unique
        "settings": {"timezone": "Africa/Kampala", "n": n},
        "signing_secret": b"\x00\x01secret",
        "signing_secret_prev": None,
        "signing_secret_prev_expires_at": None,
        "created_at": now,
    }


def test_round_trip_keeps_types(runtime: Any) -> None:
    now = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    runtime.db.write(lambda conn: _INSERT_ACCOUNT.execute(conn, _account(1, now)))
    row = runtime.db.read(lambda conn: _ACCOUNT.first(conn, {"id": "acc_direct_1"}))
    assert row is not None
    assert row["created_at"] == now and row["created_at"].tzinfo is not None
    assert row["settings"] == {"timezone": "Africa/Kampala", "n": 1}
    assert bytes(row["signing_secret"]) == b"\x00\x01secret"
    assert row["signing_secret_prev"] is None
    # Core reads back exactly what the direct statement wrote, and the reverse.
    core = runtime.db.read(
        lambda conn: (
            conn.execute(sa.select(accounts).where(accounts.c.id == "acc_direct_1"))
            .mappings()
            .one()
        )
    )
    assert dict(core) == {**row, "signing_secret": core["signing_secret"]}
    assert runtime.db.read(lambda conn: _ACCOUNT.first(conn, {"id": "missing"})) is None


def test_many_rows_keep_types_and_defaults(runtime: Any) -> None:
    """Several rows at once (a COPY on PostgreSQL) store what one row at a time stores: JSON,
    bytes, times to the microsecond, NULLs, text with tabs and newlines, column defaults."""
    now = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    rows = [_account(n, now, name=f"tab\there\nline\\{n}") for n in range(30, 33)]
    rows[1]["signing_secret_prev"] = b"\t\n\\\x00\xff"
    rows[1]["signing_secret_prev_expires_at"] = now + timedelta(days=1)
    runtime.db.write(lambda conn: _INSERT_ACCOUNT.executemany(conn, rows))
    for row in rows:
        stored = runtime.db.read(lambda conn, row=row: _ACCOUNT.first(conn, {"id": row["id"]}))
        assert stored is not None
        assert {k: bytes(v) if isinstance(v, memoryview) else v for k, v in stored.items()} == {
            **row,
            "test_signing_secret": None,
            "test_signing_secret_prev": None,
            "test_signing_secret_prev_expires_at": None,
        }
    jobs_ = [{"kind": "k", "ref": f"many{n}", "due_at": now, "created_at": now} for n in range(3)]
    runtime.db.write(lambda conn: _INSERT_JOB.executemany(conn, jobs_))
    for job in jobs_:
        assert runtime.db.read(lambda conn, job=job: _JOB_ATTEMPTS.scalar(conn, job)) == 0
    with pytest.raises(sa.exc.IntegrityError):
        runtime.db.write(lambda conn: _INSERT_ACCOUNT.executemany(conn, [rows[0], rows[0]]))


def test_many_scalars_rowcount_and_fixed_values(runtime: Any) -> None:
    now = runtime.now()
    rows = [_account(n, now, name=f"n{n}") for n in range(2, 6)]
    runtime.db.write(lambda conn: _INSERT_ACCOUNT.executemany(conn, rows))
    names = runtime.db.read(lambda conn: _NAMES.scalars(conn, {}))
    assert [n for n in names if n.startswith("n")] == ["n2", "n3", "n4", "n5"]
    changed = runtime.db.write(
        lambda conn: _RENAME.execute(conn, {"account_id": "acc_direct_2", "name": "frozen"})
    )
    assert changed == 1
    # The literal in the WHERE clause ("frozen") is bound from the compiled statement.
    again = runtime.db.write(
        lambda conn: _RENAME.execute(conn, {"account_id": "acc_direct_2", "name": "thawed"})
    )
    assert again == 0
    # A column's Python-side default (jobs.attempts = 0) applies when the key is not given.
    job = {"kind": "k", "ref": "r1", "due_at": now, "created_at": now}
    runtime.db.write(lambda conn: _INSERT_JOB.execute(conn, job))
    assert runtime.db.read(lambda conn: _JOB_ATTEMPTS.scalar(conn, {"ref": "r1"})) == 0


def test_shares_the_callers_transaction(runtime: Any) -> None:
    now = runtime.now()

    def fails_after_insert(conn: sa.Connection) -> None:
        _INSERT_ACCOUNT.execute(conn, _account(9, now))
        conn.execute(
            sa.insert(accounts).values(id="acc_direct_9", name="x", settings={}, created_at=now)
        )

    with pytest.raises(sa.exc.IntegrityError):
        runtime.db.write(fails_after_insert)
    assert runtime.db.read(lambda conn: _ACCOUNT.first(conn, {"id": "acc_direct_9"})) is None

    def direct_only(conn: sa.Connection) -> None:
        _INSERT_ACCOUNT.execute(conn, _account(10, now + timedelta(seconds=1)))

    runtime.db.write(direct_only)  # nothing but direct statements: still committed
    assert runtime.db.read(lambda conn: _ACCOUNT.first(conn, {"id": "acc_direct_10"}))


def test_refuses_expanding_parameters(runtime: Any) -> None:
    stmt = Direct(
        sa.select(accounts.c.id).where(accounts.c.id.in_(sa.bindparam("ids", expanding=True)))
    )
    with pytest.raises(TypeError, match="expanding"):
        runtime.db.read(lambda conn: stmt.all(conn, {"ids": ["a"]}))


def test_one_of_takes_any_number_of_values_in_one_statement(runtime: Any) -> None:
    """``one_of`` is the list lookup a direct statement can hold: the same text (one plan,
    prepared once on PostgreSQL) for any number of values, matching only exact values."""
    now = datetime(2026, 3, 1, tzinfo=UTC)
    odd = "acc_direct_'\"%_*"  # quotes, LIKE and JSON metacharacters are plain text here
    rows = [_account(n, now) for n in range(40, 44)] + [{**_account(44, now), "id": odd}]
    runtime.db.write(lambda conn: _INSERT_ACCOUNT.executemany(conn, rows))
    names = Direct(
        sa.select(accounts.c.name).where(one_of(accounts.c.id, "ids")).order_by(accounts.c.name)
    )

    def lookup(ids: list[str]) -> list[str]:
        return list(runtime.db.read(lambda conn: names.scalars(conn, {"ids": ids})))

    assert lookup([]) == []
    assert lookup(["acc_direct_41"]) == ["shop 41"]
    assert lookup(["acc_direct_43", "acc_direct_40", "missing", "acc_direct_4%"]) == [
        "shop 40",
        "shop 43",
    ]
    assert lookup([odd, odd]) == ["shop 44"]
    assert len(names._plans) == 1
    # Core runs it too, negated as well.
    others = runtime.db.read(
        lambda conn: conn.execute(
            sa.select(sa.func.count())
            .select_from(accounts)
            .where(accounts.c.id.like("acc_direct_4%"), ~one_of(accounts.c.id, "ids")),
            {"ids": ["acc_direct_40", odd]},
        ).scalar_one()
    )
    assert others == 3


def test_driver_errors_surface_as_sqlalchemy_errors_without_values(runtime: Any) -> None:
    now = runtime.now()
    runtime.db.write(lambda conn: _INSERT_ACCOUNT.execute(conn, _account(20, now)))
    with pytest.raises(sa.exc.IntegrityError) as caught:
        runtime.db.write(lambda conn: _INSERT_ACCOUNT.execute(conn, _account(20, now)))
    assert caught.value.orig is not None
    # Bound values are not in the message (the database's own detail may name the key).
    assert "shop" not in str(caught.value)
    with pytest.raises(sa.exc.IntegrityError):
        runtime.db.write(lambda conn: _INSERT_ACCOUNT.executemany(conn, [_account(20, now)]))


def test_deferred_rows_are_written_with_the_batch_and_fail_alone(runtime: Any) -> None:
    """Rows deferred by concurrent writes go in as one bulk insert at the end of the batch;
    a deferred row that cannot be written fails its own write only."""
    now = runtime.now()
    runtime.db.write(lambda conn: _INSERT_ACCOUNT.execute(conn, _account(30, now)))

    def write_for(n: int) -> Any:
        number = 30 if n == 5 else 31 + n  # n == 5 collides with the existing account

        def fn(conn: sa.Connection) -> int:
            _INSERT_ACCOUNT.defer(conn, [_account(number, now)])
            return number

        return fn

    results = write_concurrently(runtime, write_for, 12)
    assert isinstance(results[5], sa.exc.IntegrityError)
    assert [r for n, r in enumerate(results) if n != 5] == [31 + n for n in range(12) if n != 5]
    ids = runtime.db.read(lambda conn: conn.execute(sa.select(accounts.c.id)).scalars().all())
    expected = [30, *(31 + n for n in range(12) if n != 5)]
    assert sorted(ids) == sorted(f"acc_direct_{n}" for n in expected)


def test_deferring_outside_the_writer_writes_at_once(runtime: Any) -> None:
    now = runtime.now()
    with runtime.db.write_engine.begin() as conn:
        _INSERT_ACCOUNT.defer(conn, [_account(50, now)])
        assert _ACCOUNT.first(conn, {"id": "acc_direct_50"}) is not None


def test_returning_comes_back_through_first_and_all(runtime: Any) -> None:
    """UPDATE ... RETURNING: rows keyed and converted like a SELECT's (aware datetimes)."""
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    runtime.db.write(
        lambda conn: _INSERT_JOB.executemany(
            conn,
            [{"kind": "ret", "ref": f"ret{n}", "due_at": now, "created_at": now} for n in range(3)],
        )
    )
    lease = Direct(
        sa.update(jobs)
        .where(jobs.c.kind == sa.bindparam("k"))
        .values(lease_until=sa.bindparam("until"))
        .returning(jobs.c.ref, jobs.c.lease_until, jobs.c.attempts)
    )
    until = now + timedelta(minutes=1)
    rows = runtime.db.write(lambda conn: lease.all(conn, {"k": "ret", "until": until}))
    assert sorted(rows, key=lambda r: r["ref"]) == [
        {"ref": f"ret{n}", "lease_until": until, "attempts": 0} for n in range(3)
    ]
    assert all(row["lease_until"].tzinfo is not None for row in rows)
    one = Direct(
        sa.update(jobs)
        .where(jobs.c.ref == sa.bindparam("r"))
        .values(attempts=jobs.c.attempts + 1)
        .returning(jobs.c.attempts)
    )
    assert runtime.db.write(lambda conn: one.first(conn, {"r": "ret1"})) == {"attempts": 1}
    assert runtime.db.write(lambda conn: one.scalar(conn, {"r": "missing"})) is None


def test_sqlite_time_text_is_sqlalchemys_own() -> None:
    """The fast SQLite conversion of UTCDateTime writes and reads exactly what SQLAlchemy's
    DateTime does, so stored text compares and sorts the same either way."""
    import random

    from sqlalchemy.dialects.sqlite import pysqlite

    from msgine.server.storage._tables import UTCDateTime

    dialect = pysqlite.dialect()
    fast_in = UTCDateTime().bind_processor(dialect)
    fast_out = UTCDateTime().result_processor(dialect, None)
    core_in = sa.DateTime().dialect_impl(dialect).bind_processor(dialect)
    core_out = sa.DateTime().dialect_impl(dialect).result_processor(dialect, None)
    assert fast_in and fast_out and core_in and core_out
    rng = random.Random(7)
    moments = [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    moments += [
        datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(2**52))
        for _ in range(500)
    ]
    for moment in moments:
        text = fast_in(moment)
        assert text == core_in(moment.replace(tzinfo=None))
        assert fast_out(text) == core_out(text).replace(tzinfo=UTC) == moment
    with pytest.raises(ValueError, match="naive"):
        fast_in(datetime(2026, 1, 1))


def test_rows_deferred_by_a_failing_write_are_not_stored(runtime: Any) -> None:
    """A write that defers rows and then fails leaves nothing behind, also when the batch
    falls back to one savepoint per write (its rows must not ride on the next write)."""
    now = runtime.now()

    def write_for(n: int) -> Any:
        def fn(conn: sa.Connection) -> int:
            _INSERT_ACCOUNT.defer(conn, [_account(60 + n, now)])
            if n % 2:
                raise ValueError("refused after deferring")
            return n

        return fn

    outcomes = write_concurrently(runtime, write_for, 8)
    assert [o for o in outcomes if not isinstance(o, Exception)] == [0, 2, 4, 6]
    ids = runtime.db.read(lambda conn: conn.execute(sa.select(accounts.c.id)).scalars().all())
    assert sorted(ids) == sorted(f"acc_direct_{60 + n}" for n in (0, 2, 4, 6))
