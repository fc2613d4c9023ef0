"""Checking and consuming a request's windows, in memory or in Redis through `limits`.

A check passes only if every window has room; then all are consumed (or, when asked only to
test, none). Memory does this synchronously, so it is atomic within the process. Redis does it
in at most two concurrent rounds of `limits` calls (read all, then consume all), because each
call is a network round trip and a request makes several.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from functools import lru_cache
from typing import NamedTuple, TypeVar

from limits import RateLimitItem

from ._backend import MemoryStores, Strategies
from ._memory import Key
from ._parse import as_items

T = TypeVar("T")
Spec = tuple[RateLimitItem, int, int]  # item, amount, window seconds


@lru_cache(maxsize=1024)
def _specs_of(text: str) -> tuple[Spec, ...]:
    return tuple((item, item.amount, item.get_expiry()) for item in as_items(text))


def specs(limits: str | Sequence[RateLimitItem]) -> tuple[Spec, ...]:
    """Parsed limits with their amounts and window lengths (cached for limit strings)."""
    if isinstance(limits, str):
        return _specs_of(limits)
    return tuple((item, item.amount, item.get_expiry()) for item in as_items(limits))


class Win:
    """One limit applied to one identity: what both storages need to count it."""

    __slots__ = ("amount", "identity", "item", "key", "namespace")

    def __init__(self, namespace: str, identity: str, spec: Spec) -> None:
        self.namespace = namespace
        self.identity = identity
        self.item, self.amount, expiry = spec
        self.key: Key = (namespace, identity, expiry)

    @property
    def expiry(self) -> int:
        return self.key[2]


class Row:
    """A window's state as seen by one check: room left before this request, and reset.
    (A plain slotted class: built several times per request, a frozen dataclass costs 3x.)"""

    __slots__ = ("amount", "remaining", "reset_at", "win")

    def __init__(self, win: Win, amount: int, remaining: int, reset_at: float) -> None:
        self.win = win
        self.amount = amount
        self.remaining = remaining
        self.reset_at = reset_at


class Outcome(NamedTuple):
    """`rows` are the refusing windows when not allowed, else the windows checked (memory
    reports only the tightest)."""

    allowed: bool
    rows: list[Row]
    now: float


def in_memory(
    stores: MemoryStores,
    windows: Sequence[Win],
    cost: int,
    consume: bool,
    strict: frozenset[str],
    divisor: int,
) -> Outcome:
    """Check (and consume) in this process's counters; `strict` namespaces are divided by
    `divisor` while standing in for Redis."""
    now = time.time()
    state = stores.main.state
    standin = stores.standin
    tightest: Row | None = None
    refused: list[Row] = []
    for win in windows:
        amount = win.amount
        if standin and win.namespace in strict:
            amount = max(1, amount // divisor)
        used, reset_at = state(win.key, now)
        remaining = amount - used
        if remaining < cost:
            refused.append(Row(win, amount, remaining, reset_at))
        elif tightest is None or (remaining, reset_at) < (tightest.remaining, tightest.reset_at):
            tightest = Row(win, amount, remaining, reset_at)
    if refused or tightest is None:
        return Outcome(False, refused, now)
    if consume:
        stores.main.add([w.key for w in windows], cost, now)
    return Outcome(True, [tightest], now)


async def gather(calls: Sequence[Awaitable[T]]) -> list[T]:
    """Await calls concurrently (one round trip's wait for all), or directly when one."""
    if len(calls) == 1:
        return [await calls[0]]
    return list(await asyncio.gather(*calls))


def redis_ids(tag: str, win: Win) -> tuple[str, str, str]:
    return (tag, win.namespace, win.identity)


async def in_redis(
    strategies: Strategies, tag: str, windows: Sequence[Win], cost: int, consume: bool, report: bool
) -> Outcome:
    """Check (and consume) in Redis. Without `report`, the windows are not read first: one
    atomic hit each, and only refusals are read (for their reset time). Allowed rows then
    carry the amount minus `cost` as `remaining`, an upper bound."""
    main = strategies.main
    if consume and not report:
        passed = await gather([main.hit(w.item, *redis_ids(tag, w), cost=cost) for w in windows])
        if all(passed):
            now = time.time()
            return Outcome(True, [Row(w, w.amount, w.amount, now + w.expiry) for w in windows], now)
        return await _refusals(
            strategies, tag, [w for w, ok in zip(windows, passed, strict=True) if not ok]
        )
    stats = await gather([main.get_window_stats(w.item, *redis_ids(tag, w)) for w in windows])
    now = time.time()
    rows = [
        Row(w, w.amount, s.remaining, s.reset_time) for w, s in zip(windows, stats, strict=True)
    ]
    refused = [row for row in rows if row.remaining < cost]
    if refused:
        return Outcome(False, refused, now)
    if consume:
        passed = await gather([main.hit(w.item, *redis_ids(tag, w), cost=cost) for w in windows])
        if not all(passed):  # lost a race for the last units
            return Outcome(False, [r for r, ok in zip(rows, passed, strict=True) if not ok], now)
    return Outcome(True, rows, now)


async def _refusals(strategies: Strategies, tag: str, refused: Sequence[Win]) -> Outcome:
    stats = await gather(
        [strategies.main.get_window_stats(w.item, *redis_ids(tag, w)) for w in refused]
    )
    rows = [Row(w, w.amount, 0, s.reset_time) for w, s in zip(refused, stats, strict=True)]
    return Outcome(False, rows, time.time())
