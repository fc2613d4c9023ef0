"""Per-key usage (requests per hour and source address) and ``last_used_at``, without a write
per request. Requests refused because their key was revoked are counted the same way
(``refused``): after a compromise they show who still holds the key.

Each authenticated request only bumps a counter in memory. A background task writes the
counters to ``key_usage`` (an upsert that adds to what other processes wrote) and sets
``last_used_at`` of the keys seen, every ``MSGINE_USAGE_FLUSH_SECONDS`` (default 5) and at
shutdown. So ``last_used_at`` is updated at most once per key per flush, and a usage report (see
:mod:`msgine.server.incident`) misses at most the last interval of a running process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from sqlalchemy.dialects import postgresql, sqlite

from msgine.server.api._deps import client_ip
from msgine.server.keys import KeyRefused, Principal, touch_last_used
from msgine.server.logging import get_logger
from msgine.server.runtime import Runtime
from msgine.server.storage import key_usage

log = get_logger("msgine.usage")

FLUSH_ENV = "MSGINE_USAGE_FLUSH_SECONDS"
DEFAULT_FLUSH_SECONDS = 5.0
#: Distinct (key, hour, address) buckets held before an early flush: bounds memory under abuse.
MAX_PENDING = 10_000
UNKNOWN_ADDRESS = "unknown"

Bucket = tuple[str, datetime, str]


def flush_interval() -> float:
    """The flush interval from the environment (seconds, > 0), else the default."""
    raw = os.environ.get(FLUSH_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_FLUSH_SECONDS
    except ValueError:
        return DEFAULT_FLUSH_SECONDS
    return value if value > 0 else DEFAULT_FLUSH_SECONDS


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class UsageRecorder:
    """In-memory counters for one process, flushed in batches."""

    def __init__(self, runtime: Runtime, interval: float) -> None:
        self.runtime = runtime
        self.interval = interval
        self._counts: Counter[Bucket] = Counter()
        self._refused: Counter[Bucket] = Counter()
        self._last_used: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()

    def __repr__(self) -> str:
        return f"UsageRecorder(pending={len(self._counts)})"

    def note(self, key_id: str, address: str | None, now: datetime) -> None:
        """Count one request; starts the flush loop on first use (inside the app's loop)."""
        self._counts[(key_id, hour_of(now), address or UNKNOWN_ADDRESS)] += 1
        self._last_used[key_id] = now
        self._started()

    def note_refused(self, key_id: str, address: str | None, now: datetime) -> None:
        """Count one request refused because its key is revoked (``last_used_at`` stays)."""
        self._refused[(key_id, hour_of(now), address or UNKNOWN_ADDRESS)] += 1
        self._started()

    def _started(self) -> None:
        if self._task is None and not self._stop.is_set():
            self._task = asyncio.get_running_loop().create_task(self._loop())
        elif len(self._counts) + len(self._refused) >= MAX_PENDING:
            asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> int:
        """Write what was counted so far; returns how many buckets were written. On failure
        the counts are kept for the next attempt."""
        async with self._lock:
            counts, self._counts = self._counts, Counter()
            refused, self._refused = self._refused, Counter()
            last_used, self._last_used = self._last_used, {}
            if not counts and not refused and not last_used:
                return 0
            try:
                await self.runtime.db.awrite(lambda conn: _store(conn, counts, refused, last_used))
            except Exception as exc:
                counts.update(self._counts)
                refused.update(self._refused)
                self._counts, self._refused = counts, refused
                self._last_used = {**last_used, **self._last_used}
                log.warning("usage_flush_failed", error_type=type(exc).__name__)
                return 0
            return len(counts.keys() | refused.keys())

    async def _loop(self) -> None:
        # Stopped by an event, never by cancellation: a write cancelled half-way would leave
        # the database writer holding a future nobody waits for.
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)
            await self.flush()

    async def close(self) -> None:
        """Stop the loop after its current flush, then write what is left."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()


def _store(
    conn: sa.Connection,
    counts: Counter[Bucket],
    refused: Counter[Bucket],
    last_used: dict[str, datetime],
) -> None:
    rows = [
        {
            "key_id": key_id,
            "hour": hour,
            "source_ip": address,
            "requests": counts[bucket],
            "refused": refused[bucket],
        }
        for bucket in counts.keys() | refused.keys()
        for key_id, hour, address in (bucket,)
    ]
    if rows:
        insert: Any = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(
            key_usage
        )
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["key_id", "hour", "source_ip"],
                set_={
                    "requests": key_usage.c.requests + insert.excluded.requests,
                    "refused": key_usage.c.refused + insert.excluded.refused,
                },
            ),
            rows,
        )
    by_time: dict[datetime, list[str]] = {}
    for key_id, moment in last_used.items():
        by_time.setdefault(moment, []).append(key_id)
    for moment, key_ids in by_time.items():
        touch_last_used(conn, key_ids, moment)


def install(app: FastAPI) -> UsageRecorder:
    """Count every successful authentication; flush periodically, on drain and at shutdown."""
    runtime: Runtime = app.state.runtime
    recorder = UsageRecorder(runtime, flush_interval())

    async def on_auth(request: Request, principal: Principal | None, exc: Exception | None) -> None:
        if principal is not None:
            recorder.note(principal.key_id, client_ip(request), runtime.now())
        elif isinstance(exc, KeyRefused) and exc.reason == "revoked" and exc.key_id:
            recorder.note_refused(exc.key_id, client_ip(request), runtime.now())

    async def drain_step() -> int:
        await recorder.flush()
        return 0  # flushing never creates work for the others

    app.state.auth_hooks.append(on_auth)
    app.state.shutdown_hooks.append(recorder.close)
    app.state.drain_steps.append(drain_step)
    app.state.usage_recorder = recorder
    return recorder
