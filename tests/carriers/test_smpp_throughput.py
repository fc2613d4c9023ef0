"""The throughput cap holds across two worker processes, measured at the Node SMSC."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from smsc_support import Smsc

SENDER = Path(__file__).with_name("smpp_sender.py")
RATE = 40.0
EACH = 60


def _busiest_second(times: list[float]) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def _run_two_senders(smsc: Smsc, url: str, key: str) -> list[float]:
    senders = [
        subprocess.Popen(
            [sys.executable, str(SENDER), str(smsc.port), str(EACH), str(RATE), url, key]
        )
        for _ in range(2)
    ]
    for sender in senders:
        assert sender.wait(timeout=120) == 0
    submits = smsc.state()["submits"]
    assert len(submits) == 2 * EACH
    assert len({submit["session"] for submit in submits}) == 2  # both processes sent
    return [submit["t"] for submit in submits]


def _check_cap(times: list[float]) -> None:
    # Each process alone may send RATE per second: without a shared schedule the busiest
    # second holds about 2 * RATE. With it, RATE, give or take the timers' jitter (messages
    # released a few milliseconds late bunch up with the next ones).
    assert _busiest_second(times) <= RATE * 1.15
    # On average no faster than the cap, and a rate, not a stall: 120 at 40/s take about 3 s.
    span = max(times) - min(times)
    assert (len(times) - 1) / span <= RATE * 1.03
    assert span <= len(times) / RATE * 2


def test_cap_across_processes_through_the_database(smsc: Smsc, runtime: Any) -> None:
    """SQLite and PostgreSQL (the runtime fixture runs on both): the schedule's row."""
    _check_cap(_run_two_senders(smsc, runtime.settings.sqlalchemy_url, "db"))


@pytest.mark.redis
def test_cap_across_processes_through_redis(smsc: Smsc, redis_url: str) -> None:
    import secrets

    _check_cap(_run_two_senders(smsc, redis_url, f"msgine-test-{secrets.token_hex(4)}"))


def test_a_cap_per_process_would_not_hold(smsc: Smsc) -> None:
    """The check above can fail: with each process's own schedule, the two together exceed it."""
    times = _run_two_senders(smsc, "memory", "memory")
    assert _busiest_second(times) > RATE * 1.5


def test_busiest_second_counts_a_sliding_window() -> None:
    assert _busiest_second([0.0, 0.5, 0.99, 1.0, 1.2]) == 4
    assert _busiest_second([0.0, 1.0, 2.0]) == 1
