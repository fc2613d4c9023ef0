"""Engines for SQLite (WAL, one writer) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; SQLAlchemy's documented fix is to
    # turn it off and emit BEGIN ourselves (see the "begin" listeners below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before the 201 goes out, even across a power cut.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted and overwritten content is zeroed in the file, so erased personal data (and old
    # ciphertext) does not linger in free pages. Some builds default to it; most do not.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def create_engines(url: str) -> tuple[Engine, Engine]:
    """(read engine, write engine), each with its own pool.

    ``hide_parameters``: a database error's message never carries bound values into a log.
    """
    if not url.startswith("sqlite"):
        # Reads autocommit, as on SQLite: each statement sees the latest committed data, and a
        # read costs no BEGIN and ROLLBACK round trips (the send path reads on every request).
        reader = sa.create_engine(
            url,
            pool_size=10,
            max_overflow=20,
            pool_pre_ping=True,
            hide_parameters=True,
            isolation_level="AUTOCOMMIT",
        )
        writer = sa.create_engine(
            url, pool_size=10, max_overflow=20, pool_pre_ping=True, hide_parameters=True
        )
        return reader, writer
    args = {"check_same_thread": False, "timeout": 30}
    reader = sa.create_engine(
        url, connect_args=args, pool_size=8, max_overflow=16, hide_parameters=True
    )
    writer = sa.create_engine(
        url, connect_args=args, pool_size=2, max_overflow=2, hide_parameters=True
    )
    for engine in (reader, writer):
        event.listen(engine, "connect", _sqlite_pragmas)
    # No per-transaction event listeners: they make every statement dispatch events. Reads run
    # each statement in its own implicit transaction (a WAL reader sees a committed snapshot);
    # writes start with ``begin_write`` below.
    return reader, writer


@contextlib.contextmanager
def begin_write(engine: Engine) -> Iterator[sa.Connection]:
    """A write transaction, committed on success and rolled back on error.

    On SQLite it starts with BEGIN IMMEDIATE: the write lock is taken up front, so two writers
    queue on busy_timeout instead of deadlocking on a read-to-write lock upgrade.
    """
    with engine.connect() as conn:
        start_write(conn)
        yield conn
        conn.commit()


def start_write(conn: sa.Connection) -> None:
    """Begin a write transaction on ``conn`` (BEGIN IMMEDIATE on SQLite, see ``begin_write``)."""
    conn.begin()
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
