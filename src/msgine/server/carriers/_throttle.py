"""A carrier's throughput cap, held across every connection and every worker process.

The cap is a GCRA schedule (the "virtual clock" form of a token bucket): one number per carrier,
the theoretical arrival time ``tat`` of the next free slot. Reserving ``n`` messages moves it to
``max(tat, now) + n / rate`` in one atomic step and tells the caller when its first slot starts;
the caller then releases its messages one slot (``1 / rate``) apart. No process can take a slot
another took, so the messages leaving all processes together never exceed ``rate`` per second
(plus the one message in flight at a second's edge), and an idle carrier starts at once.

Where the number lives:
- Redis (``MSGINE_REDIS_URL`` set): one key per carrier, moved by a Lua script on Redis's own
  clock, so processes on several hosts share one schedule.
- Otherwise the database: one row per carrier in ``carrier_throttle``, moved by one
  ``UPDATE ... RETURNING`` (PostgreSQL locks the row; SQLite has one writer), on the processes'
  own clocks (the same host's, for SQLite).
- In one process only (tests, a single worker): :class:`LocalSchedule`.

Concurrent acquires in one turn of the event loop share one reservation, so a worker's batch of
submits costs one round trip to Redis or the database, not one per message. HTTP upstreams use
the same :class:`Throttle`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from msgine.server.storage import Database, carrier_throttle

if TYPE_CHECKING:
    import redis.asyncio

    from msgine.server.carriers._registry import BuildContext
    from msgine.server.runtime import Runtime


class Schedule(Protocol):
    """Reserves ``count`` slots of ``rate`` per second; returns the seconds until the first."""

    async def reserve(self, count: int) -> float: ...

    async def aclose(self) -> None: ...


class Throttle:
    """Waits until a message may leave: ``await throttle.acquire(n)`` before sending ``n``."""

    def __init__(self, rate: float, schedule: Schedule) -> None:
        if rate <= 0:
            raise ValueError("a throughput cap must be positive")
        self.rate = rate
        self._schedule = schedule
        self._pending: list[tuple[int, asyncio.Future[None]]] = []
        self._reserving: asyncio.Task[None] | None = None  # held: the loop keeps weak references

    def __repr__(self) -> str:
        return f"Throttle(rate={self.rate})"

    async def aclose(self) -> None:
        """Release the schedule's connection (the carrier using it stopped)."""
        await self._schedule.aclose()

    async def acquire(self, count: int = 1) -> None:
        if count <= 0:
            return
        loop = asyncio.get_running_loop()
        slot: asyncio.Future[None] = loop.create_future()
        self._pending.append((count, slot))
        if len(self._pending) == 1:
            # Runs after every acquire already scheduled in this turn of the loop has queued.
            self._reserving = loop.create_task(self._reserve())
        await slot

    async def _reserve(self) -> None:
        batch, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        try:
            wait = await self._schedule.reserve(sum(count for count, _ in batch))
        except BaseException as exc:
            for _, slot in batch:
                if not slot.done():
                    slot.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            if not isinstance(exc, Exception):
                raise
            return
        start = loop.time() + max(0.0, wait)
        before = 0
        for count, slot in batch:
            # Each caller's messages go from the slot after the previous caller's last one.
            loop.call_at(start + before / self.rate, _release, slot)
            before += count


def _release(slot: asyncio.Future[None]) -> None:
    if not slot.done():
        slot.set_result(None)


class LocalSchedule:
    """The schedule in this process's memory: the cap holds for this process only."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._tat = 0.0

    async def reserve(self, count: int) -> float:
        now = time.monotonic()
        start = max(self._tat, now)
        self._tat = start + count / self._rate
        return start - now

    async def aclose(self) -> None:
        return None


# The slot arithmetic on Redis's clock; the result is a string (Redis truncates Lua numbers).
_RESERVE_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(tat, now)
local after = start + tonumber(ARGV[1]) / tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.6f', after), 'PX',
           math.ceil((after - now) * 1000) + 60000)
return string.format('%.6f', start - now)
"""


class RedisSchedule:
    """The schedule in Redis, shared by every process that uses the same key."""

    def __init__(
        self, client: redis.asyncio.Redis[Any], key: str, rate: float, *, owned: bool = False
    ) -> None:
        self._client = client
        self._key = key
        self._rate = rate
        self._owned = owned
        self._script = client.register_script(_RESERVE_LUA)

    async def reserve(self, count: int) -> float:
        wait = await self._script(keys=[self._key], args=[count, repr(self._rate)])
        return float(wait)

    async def aclose(self) -> None:
        if self._owned:
            await self._client.connection_pool.disconnect()


_TAT = carrier_throttle.c.tat
_ADVANCE = (
    sa.update(carrier_throttle)
    .where(carrier_throttle.c.carrier == sa.bindparam("name"))
    .values(
        tat=sa.case((sa.bindparam("now") < _TAT, _TAT), else_=sa.bindparam("now"))
        + sa.bindparam("cost")
    )
    .returning(_TAT)
)


class DatabaseSchedule:
    """The schedule in the gateway's database: one row per carrier."""

    def __init__(self, db: Database, carrier: str, rate: float) -> None:
        self._db = db
        self._carrier = carrier
        self._rate = rate
        insert = postgresql.insert if not db.is_sqlite else sqlite.insert
        self._create = (
            insert(carrier_throttle)
            .values(carrier=carrier, tat=0.0)
            .on_conflict_do_nothing(index_elements=["carrier"])
        )

    async def reserve(self, count: int) -> float:
        cost = count / self._rate

        def advance(conn: sa.Connection) -> float:
            now = time.time()
            tat = conn.execute(_ADVANCE, {"name": self._carrier, "now": now, "cost": cost}).scalar()
            if tat is None:
                conn.execute(self._create)
                tat = conn.execute(
                    _ADVANCE, {"name": self._carrier, "now": now, "cost": cost}
                ).scalar_one()
            return float(tat) - cost - now

        return await self._db.awrite(advance)

    async def aclose(self) -> None:
        return None


def throttle_for(runtime: Runtime, carrier: str, rate: float) -> Throttle:
    """The deployment's shared throttle of ``carrier``: Redis when MSGINE_REDIS_URL is set,
    else the gateway's database."""
    settings = runtime.settings
    if settings.redis_url is not None:
        import redis.asyncio  # only with Redis configured: redis-py costs every start 0.1 s

        client = redis.asyncio.Redis.from_url(settings.redis_url.get_secret_value())
        key = f"{settings.redis_key_prefix}:throttle:{carrier}"
        return Throttle(rate, RedisSchedule(client, key, rate, owned=True))
    return Throttle(rate, DatabaseSchedule(runtime.db, carrier, rate))


def throttle_of(ctx: BuildContext) -> Throttle | None:
    """A carrier's throttle from its ``throughput`` option, or None when it has no cap."""
    rate = getattr(ctx.options, "throughput", None)
    return throttle_for(ctx.runtime, ctx.name, rate) if rate else None


def shared_throttle(
    carrier: str,
    rate: float,
    *,
    redis_client: redis.asyncio.Redis[Any] | None = None,
    redis_prefix: str = "msgine",
    db: Database | None = None,
) -> Throttle:
    """The throttle every process of one deployment shares for ``carrier``: Redis when a client
    is given, else the database, else (a single process) this process's memory."""
    schedule: Schedule
    if redis_client is not None:
        schedule = RedisSchedule(redis_client, f"{redis_prefix}:throttle:{carrier}", rate)
    elif db is not None:
        schedule = DatabaseSchedule(db, carrier, rate)
    else:
        schedule = LocalSchedule(rate)
    return Throttle(rate, schedule)
