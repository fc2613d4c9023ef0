"""The database handle the rest of the gateway uses: reads, group-committed writes, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from msgine.server.storage._engine import begin_write, create_engines
from msgine.server.storage._pointreads import Lookup, PointReadLane
from msgine.server.storage._writer import BatchRead, GroupCommitWriter

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works; it only has to be the same in every process of one deployment.
_PG_MIGRATION_LOCK = 0x6D7367696E65


def migrations_config() -> Config:
    """Alembic's configuration for the gateway's own migrations."""
    from alembic.config import Config  # loaded only to migrate: see newest_revision

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def newest_revision() -> str:
    """The newest migration's revision, read from the file names (``NNNN_name.py``, one linear
    chain; a test checks it is alembic's head). Opening a database that is already up to date
    then never loads alembic, which cost about 0.2 s of every command and every start."""
    versions = (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
    return max(path.name[:4] for path in versions)


def current_revision(conn: sa.Connection) -> str | None:
    """The schema's migration revision, or None before the first migration."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.read_engine, self.write_engine = create_engines(url)
        self._writer: GroupCommitWriter | None = None
        self._pinned = threading.local()
        self._pinned_all: list[sa.Connection] = []
        self._point_reads = PointReadLane(self._point_read)

    def __repr__(self) -> str:
        return f"Database(dialect={self.read_engine.dialect.name!r})"

    @property
    def writer(self) -> GroupCommitWriter:
        if self._writer is None:
            self._writer = GroupCommitWriter(self.write_engine, loop_lane=self.is_sqlite)
        return self._writer

    def read(self, fn: Callable[[sa.Connection], T]) -> T:
        with self.read_engine.connect() as conn:
            return fn(conn)

    def write(
        self, fn: Callable[[sa.Connection], T], *, reads: Sequence[BatchRead] | None = None
    ) -> T:
        """Run ``fn`` in a committed transaction (shared with concurrent writers). ``reads``
        declares what ``fn`` will read, to be read with the batch's other writes (``BatchRead``)."""
        return self.writer.submit(fn, reads).result()

    async def aread(self, fn: Callable[[sa.Connection], T], *, point: bool = False) -> T:
        """Read in a worker thread. ``point`` marks an indexed single-row lookup that runs on
        every request (the key lookup): it runs on a connection kept open. On SQLite it runs
        inline, since it takes microseconds and a WAL reader never waits for a lock, while a
        thread hop costs more than the query; on PostgreSQL it is a network round trip, so it
        stays off the event loop, in the point-read thread (``PointReadLane``)."""
        if point and self.is_sqlite:
            return self._point_read(fn)
        if point:
            return await self._point_reads.submit(fn)
        return await asyncio.to_thread(self.read, fn)

    async def alookup(self, lookup: Lookup, key: Any) -> Any:
        """``key``'s value from ``lookup``, or None: a point read like ``aread(point=True)``,
        made on PostgreSQL with the other keys queued at the same moment in one statement."""
        if self.is_sqlite:
            return self._point_read(lambda conn: lookup.fetch(conn, [key]).get(key))
        return await self._point_reads.lookup(lookup, key)

    def _point_read(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` on a read connection this thread keeps open.

        Checking a connection out of the pool costs more than a point read (on PostgreSQL
        the pool's pre-ping adds a round trip to every checkout). Keeping one open is safe:
        the connection autocommits, so every statement reads its own committed snapshot and
        holds no lock once its cursor is closed. A connection that fails is dropped; when it
        had gone stale (the database restarted, a proxy closed it) the read runs once more on
        a fresh one, as the pre-ping would have done, since a read changes nothing.
        """
        conn: sa.Connection | None = getattr(self._pinned, "conn", None)
        fresh = conn is None
        if conn is None:
            conn = self._pin()
        try:
            return fn(conn)
        except sa.exc.DBAPIError as exc:
            stale = not fresh and _is_disconnect(conn, exc)
            self._unpin(conn)
            if not stale:
                raise
        return fn(self._pin())

    def _pin(self) -> sa.Connection:
        conn = self._pinned.conn = self.read_engine.connect()
        self._pinned_all.append(conn)
        return conn

    def _unpin(self, conn: sa.Connection) -> None:
        self._pinned.conn = None
        with contextlib.suppress(ValueError):  # close() may have taken it already
            self._pinned_all.remove(conn)
        with contextlib.suppress(Exception):  # broken already: nothing more to release
            conn.invalidate()
            conn.close()

    async def awrite(
        self, fn: Callable[[sa.Connection], T], *, reads: Sequence[BatchRead] | None = None
    ) -> T:
        return await self.writer.submit_async(fn, reads)

    def is_initialised(self) -> bool:
        """True once migrations have run here (the schema's version table holds a revision)."""
        with self.read_engine.connect() as conn:
            return current_revision(conn) is not None

    def migrate(
        self, revision: str = "head", *, vault: Callable[[sa.Connection], Any] | None = None
    ) -> None:
        """Bring the schema to ``revision`` (the newest by default); safe when several processes
        start at once. ``vault`` opens the data keys in the migration's transaction, for
        migrations that encrypt or re-key existing rows (they refuse to run without it when
        there are rows to convert)."""
        with begin_write(self.write_engine) as conn:
            if revision == "head" and current_revision(conn) == newest_revision():
                return  # up to date; another process may only have moved it to the same head
            from alembic import command

            cfg = migrations_config()
            if not self.is_sqlite:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            cfg.attributes["vault"] = vault
            command.upgrade(cfg, revision)

    def close(self) -> None:
        self._point_reads.close()
        for conn in self._pinned_all:
            conn.close()
        self._pinned_all.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.read_engine.dispose()
        self.write_engine.dispose()


def _is_disconnect(conn: sa.Connection, exc: sa.exc.DBAPIError) -> bool:
    """True when ``exc`` says the connection itself is gone (not the statement failing)."""
    if exc.connection_invalidated:
        return True
    try:
        raw = conn.connection.dbapi_connection
    except sa.exc.SQLAlchemyError:  # already invalidated
        return True
    return bool(conn.dialect.is_disconnect(exc.orig, raw, None))  # type: ignore[arg-type]
