"""Group commit on SQLite's loop lane: statements on the event loop, the COMMIT in a thread.

Also on PostgreSQL, where every write goes through the writer thread: the same guarantees
(each caller sees only its own failure; nothing is lost while another writer holds the lock).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from msgine.server.storage import Database

TABLE = "CREATE TABLE items (name TEXT PRIMARY KEY)"


@pytest.fixture
def db(tmp_path: Path, database_url: str | None) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'lanes.db'}"
    if database_url is not None:
        url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    database = Database(url)
    database.write(lambda conn: conn.exec_driver_sql(TABLE))
    try:
        yield database
    finally:
        database.close()


_INSERT = sa.text("INSERT INTO items (name) VALUES (:name)")


def _insert(name: str, fail: bool = False) -> Any:
    def fn(conn: sa.Connection) -> str:
        conn.execute(_INSERT, {"name": name})
        if fail:
            raise ValueError("boom")
        return name

    return fn


def _names(db: Database) -> set[str]:
    return set(db.read(lambda c: c.exec_driver_sql("SELECT name FROM items").scalars().all()))


async def test_a_failing_write_fails_alone_among_concurrent_loop_writes(db: Database) -> None:
    results = await asyncio.gather(
        *(db.awrite(_insert(f"n{n}", fail=n == 7)) for n in range(30)), return_exceptions=True
    )
    assert isinstance(results[7], ValueError)
    assert [r for i, r in enumerate(results) if i != 7] == [f"n{n}" for n in range(30) if n != 7]
    assert _names(db) == {f"n{n}" for n in range(30) if n != 7}


async def test_a_duplicate_in_a_batch_fails_alone(db: Database) -> None:
    results = await asyncio.gather(
        db.awrite(_insert("a1")),
        db.awrite(_insert("a1")),
        db.awrite(_insert("a2")),
        return_exceptions=True,
    )
    assert results[0] == "a1" and results[2] == "a2"
    assert isinstance(results[1], sa.exc.IntegrityError)
    assert {"a1", "a2"} <= _names(db)


async def test_writing_from_inside_a_write_function_is_refused(db: Database) -> None:
    def nested(conn: sa.Connection) -> None:
        db.write(_insert("inner"))

    with pytest.raises(RuntimeError, match="inside a write function"):
        await db.awrite(nested)
    assert "inner" not in _names(db)


def _hold_lock(path: Path, seconds: float, held: threading.Event) -> threading.Thread:
    """Another writer (a CLI command, a second process) holding SQLite's write lock."""

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO items (name) VALUES ('outsider')")
        held.set()
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    return thread


@pytest.mark.parametrize("hold_seconds", [0.05, 0.6])
async def test_a_held_lock_delays_loop_writes_without_blocking_the_loop(
    tmp_path: Path, hold_seconds: float
) -> None:
    """Short holds are retried on the loop, long ones waited for by the writer thread; the
    loop keeps running throughout, and every write lands after the lock is released."""
    path = tmp_path / "held.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.write(lambda conn: conn.exec_driver_sql(TABLE))
        held = threading.Event()
        holder = _hold_lock(path, hold_seconds, held)
        await asyncio.to_thread(held.wait)
        ticks = 0
        started = time.monotonic()

        async def ticker() -> None:
            nonlocal ticks
            while time.monotonic() - started < hold_seconds:
                ticks += 1
                await asyncio.sleep(0.005)

        writes = asyncio.gather(*(db.awrite(_insert(f"w{n}")) for n in range(10)))
        await ticker()
        assert await writes == [f"w{n}" for n in range(10)]
        assert time.monotonic() - started >= hold_seconds * 0.9
        # The loop kept turning while the writes waited (a blocked loop ticks about once).
        assert ticks >= hold_seconds / 0.005 / 3
        await asyncio.to_thread(holder.join)
        assert _names(db) == {"outsider", *(f"w{n}" for n in range(10))}
    finally:
        db.close()


async def test_loop_writes_are_durable_once_acknowledged(tmp_path: Path) -> None:
    """Acknowledged means committed: a fresh connection sees every acknowledged row."""
    path = tmp_path / "durable.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.write(lambda conn: conn.exec_driver_sql(TABLE))
        for round_ in range(5):
            await asyncio.gather(*(db.awrite(_insert(f"r{round_}x{n}")) for n in range(20)))
            fresh = sqlite3.connect(path)
            count = fresh.execute("SELECT count(*) FROM items").fetchone()[0]
            fresh.close()
            assert count == 20 * (round_ + 1)
    finally:
        db.close()


async def test_a_failed_commit_fails_its_batch_and_the_next_write_works(tmp_path: Path) -> None:
    """An fsync error (disk full, I/O error) reaches every caller of that batch, nothing of it
    is stored, and the lane carries on with a fresh connection."""
    db = Database(f"sqlite:///{tmp_path / 'commit.db'}")
    try:
        db.write(lambda conn: conn.exec_driver_sql(TABLE))
        await db.awrite(_insert("before"))
        lane = db.writer._lane
        assert lane is not None and lane._conn is not None
        broken = lane._conn

        def fail() -> None:
            broken.rollback()
            raise sa.exc.OperationalError("COMMIT", None, sqlite3.OperationalError("disk I/O"))

        broken.commit = fail  # type: ignore[method-assign]
        results = await asyncio.gather(
            *(db.awrite(_insert(f"lost{n}")) for n in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, sa.exc.OperationalError) for r in results)
        assert await db.awrite(_insert("after")) == "after"
        assert lane._conn is not broken
        assert _names(db) == {"before", "after"}
    finally:
        db.close()
