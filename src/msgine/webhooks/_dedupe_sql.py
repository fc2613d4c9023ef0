"""Dedupe state in a SQL table (SQLite, PostgreSQL...): the primary key makes the claim atomic."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._dedupe import DEFAULT_LEASE, DEFAULT_TTL

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

_PROCESSING = "processing"
_DONE = "done"


class SqlDedupeStore:
    def __init__(
        self,
        engine: str | Engine,
        table_name: str = "msgine_webhook_events",
        ttl: float = DEFAULT_TTL,
        *,
        lease: float = DEFAULT_LEASE,
        create_table: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``engine`` is a SQLAlchemy ``Engine`` or a database URL."""
        try:
            import sqlalchemy as sa
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("SqlDedupeStore needs SQLAlchemy: pip install sqlalchemy") from exc
        self._sa = sa
        self._engine = sa.create_engine(engine) if isinstance(engine, str) else engine
        self._table = sa.Table(
            table_name,
            sa.MetaData(),
            sa.Column("event_id", sa.String(255), primary_key=True),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False, index=True),
        )
        if create_table:
            self._table.create(self._engine, checkfirst=True)
        self.ttl = ttl
        self.lease = lease
        self._clock = clock

    def __repr__(self) -> str:
        return f"SqlDedupeStore(table={self._table.name!r}, ttl={self.ttl})"

    def claim(self, event_id: str) -> bool:
        sa, table, now = self._sa, self._table, self._clock()
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    table.insert().values(
                        event_id=event_id, state=_PROCESSING, expires_at=now + self.lease
                    )
                )
            return True
        except sa.exc.IntegrityError:
            pass
        # The id exists: take it over only if its claim or record has expired (atomic UPDATE).
        with self._engine.begin() as conn:
            taken = conn.execute(
                table.update()
                .where(table.c.event_id == event_id, table.c.expires_at <= now)
                .values(state=_PROCESSING, expires_at=now + self.lease)
            )
        return taken.rowcount == 1

    def complete(self, event_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                self._table.update()
                .where(self._table.c.event_id == event_id)
                .values(state=_DONE, expires_at=self._clock() + self.ttl)
            )

    def release(self, event_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                self._table.delete().where(
                    self._table.c.event_id == event_id, self._table.c.state == _PROCESSING
                )
            )

    def purge_expired(self) -> int:
        """Delete expired rows; run it now and then (a cron job) to keep the table small."""
        with self._engine.begin() as conn:
            result = conn.execute(
                self._table.delete().where(self._table.c.expires_at <= self._clock())
            )
        return result.rowcount
