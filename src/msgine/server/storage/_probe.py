"""Whether the database takes writes now: the check behind ``/readyz``.

A read (``SELECT 1``) answers on a full disk and on a read-only database, while every send
fails. So readiness also rewrites one small row per process (``write_probes``), through the
same group-committed writer as a send, and reports the database unwritable when that write
fails or does not commit within ``timeout``. The answer is kept for ``ttl`` seconds, so a
load balancer polling often costs one small commit every few seconds, and concurrent checks
share one write.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import sqlalchemy as sa

from msgine.server._process import this_process
from msgine.server.logging import get_logger
from msgine.server.storage._database import Database
from msgine.server.storage._direct import Direct
from msgine.server.storage._tables import write_probes

log = get_logger("msgine.storage")
#: Rows of processes that stopped long ago are removed by the next process that starts probing.
_FORGET_AFTER = timedelta(days=1)
_TOUCH = Direct(
    sa.update(write_probes)
    .where(write_probes.c.owner == sa.bindparam("who"))
    .values(checked_at=sa.bindparam("now"))
)


def _touch(conn: sa.Connection, owner: str, now: datetime) -> None:
    if _TOUCH.execute(conn, {"who": owner, "now": now}) == 0:
        conn.execute(sa.delete(write_probes).where(write_probes.c.checked_at < now - _FORGET_AFTER))
        conn.execute(sa.insert(write_probes).values(owner=owner, checked_at=now))


class WriteProbe:
    def __init__(self, db: Database, *, ttl: float = 2.0, timeout: float = 3.0) -> None:
        self.db = db
        self.ttl = ttl
        self.timeout = timeout
        self._last: tuple[float, bool] | None = None
        self._running: asyncio.Future[bool] | None = None

    async def writable(self, now: datetime) -> bool:
        """True when a small write committed within the last ``ttl`` seconds (or now)."""
        last = self._last
        if last is not None and time.monotonic() - last[0] < self.ttl:
            return last[1]
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._probe(now))
        return await asyncio.shield(self._running)

    async def _probe(self, now: datetime) -> bool:
        owner = this_process()
        write = asyncio.ensure_future(self.db.awrite(lambda conn: _touch(conn, owner, now)))
        try:
            await asyncio.wait_for(asyncio.shield(write), self.timeout)
            ok = True
        except Exception as exc:  # a full disk, a read-only file or server, or a stuck commit
            log.warning("database_write_probe_failed", error_type=type(exc).__name__)
            ok = False
            write.add_done_callback(_consume)
        self._last = (time.monotonic(), ok)
        return ok


def _consume(future: asyncio.Future[None]) -> None:
    """Retrieve a failed probe's exception once it ends, so it is not logged as unhandled."""
    if not future.cancelled():
        future.exception()
