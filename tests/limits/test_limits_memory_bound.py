"""In-process limits use memory bounded by configuration, not by traffic, and keep limiting
past the bound (a count-min sketch that never under-counts), never silently off."""

from __future__ import annotations

import gc
import os
import random

import pytest

from msgine.server.ratelimit import RateLimiter, opaque_identity

pytestmark = pytest.mark.slow  # 200,000 recipients: scheduled first (see tests/conftest.py)

KEY = b"k" * 32
PER_RECIPIENT = "10/hour;100/day"
MIB = 1024 * 1024


def _recipient(n: int) -> str:
    return opaque_identity(f"+2567{n:08d}", KEY)


async def _send_to(limiter: RateLimiter, recipients: int) -> None:
    for n in range(recipients):
        assert (await limiter.hit("recipient", _recipient(n), PER_RECIPIENT)).allowed


def _rss() -> int:
    """This process's resident memory (Linux), in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _growth(limiter: RateLimiter, recipients: int) -> int:
    # RSS, not tracemalloc: tracing every allocation made this test ten times slower.
    gc.collect()
    before = _rss()
    await _send_to(limiter, recipients)
    gc.collect()
    return _rss() - before


async def test_two_hundred_thousand_recipients_stay_within_the_bound() -> None:
    """The default bound (20,000 exact windows, then 2 MiB sketches) holds 200,000 distinct
    recipients, two windows each, in under 48 MiB; without a bound it took about 400 MiB."""
    limiter = RateLimiter()
    try:
        growth = await _growth(limiter, 200_000)
    finally:
        await limiter.aclose()
    assert growth < 48 * MIB, f"{growth / MIB:.1f} MiB"


async def test_a_recipient_past_the_bound_is_still_limited() -> None:
    limiter = RateLimiter(max_memory_windows=100)
    try:
        await _send_to(limiter, 1_000)  # 2,000 windows wanted: most of them land in the sketch
        late = _recipient(5_000)
        for _ in range(10):
            assert (await limiter.hit("recipient", late, "10/hour")).allowed
        refused = await limiter.hit("recipient", late, "10/hour")
        assert not refused.allowed
        assert refused.retry_after > 0
        assert (await limiter.hit("recipient", _recipient(6_000), "10/hour")).allowed
    finally:
        await limiter.aclose()


async def test_sketched_counts_never_fall_below_the_true_count() -> None:
    limiter = RateLimiter(max_memory_windows=100)
    rng = random.Random(7)
    true: dict[str, int] = {}
    try:
        for _ in range(20_000):
            identity = _recipient(rng.randrange(3_000))
            decision = await limiter.hit("recipient", identity, "1000000/hour")
            assert decision.allowed
            true[identity] = true.get(identity, 0) + 1
        for identity, count in true.items():
            left = (await limiter.test("recipient", identity, "1000000/hour")).remaining
            assert 1_000_000 - left >= count
    finally:
        await limiter.aclose()
