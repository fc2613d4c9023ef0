"""Webhook retry schedule: default span, parsing of the setting, jitter bounds, Retry-After."""

from __future__ import annotations

import random

import pytest

from msgine.server.webhooks._schedule import (
    DEFAULT_SCHEDULE,
    JITTER_FRACTION,
    MAX_RETRY_AFTER,
    next_delay,
    parse_schedule,
)


def test_default_schedule_is_immediate_then_spans_more_than_a_day() -> None:
    assert DEFAULT_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert DEFAULT_SCHEDULE[0] == 0
    assert sum(DEFAULT_SCHEDULE) > 24 * 3600


@pytest.mark.parametrize("text", [None, "", "   "])
def test_unset_or_blank_gives_default(text: str | None) -> None:
    assert parse_schedule(text) == DEFAULT_SCHEDULE


def test_setting_lists_waits_between_attempts_after_an_immediate_first() -> None:
    assert parse_schedule("5, 300,1800.5") == (0.0, 5.0, 300.0, 1800.5)
    assert parse_schedule("0") == (0.0, 0.0)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("5,,10", "entry 2"),
        ("5,abc", "entry 2"),
        ("-1", "non-negative"),
        ("nan", "non-negative"),
        ("inf", "non-negative"),
        ("99999999", "exceeds"),
        (",".join(["1"] * 51), "more than"),
    ],
)
def test_invalid_settings_are_rejected_clearly(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_schedule(text)


def test_first_attempt_is_immediate_and_exhaustion_returns_none() -> None:
    assert next_delay(DEFAULT_SCHEDULE, 0) == 0
    assert next_delay(DEFAULT_SCHEDULE, len(DEFAULT_SCHEDULE)) is None
    assert next_delay(DEFAULT_SCHEDULE, len(DEFAULT_SCHEDULE) + 3, retry_after=60) is None
    with pytest.raises(ValueError):
        next_delay(DEFAULT_SCHEDULE, -1)


def test_jitter_only_lengthens_each_wait_within_its_bound() -> None:
    rng = random.Random(1234)
    for attempts_made, base in enumerate(DEFAULT_SCHEDULE):
        delays = [next_delay(DEFAULT_SCHEDULE, attempts_made, rng=rng) for _ in range(200)]
        assert all(d is not None and base <= d <= base * (1 + JITTER_FRACTION) for d in delays)
        if base:
            assert len(set(delays)) > 1  # actually jittered, not a fixed value


def test_retry_schedule_never_totals_less_than_a_day() -> None:
    rng = random.Random(99)
    for _ in range(100):
        waits = [next_delay(DEFAULT_SCHEDULE, i, rng=rng) for i in range(len(DEFAULT_SCHEDULE))]
        assert sum(w for w in waits if w is not None) >= 24 * 3600


def test_retry_after_raises_the_wait_but_is_capped() -> None:
    rng = random.Random(7)
    assert next_delay(DEFAULT_SCHEDULE, 1, retry_after=120, rng=rng) == 120
    # A shorter Retry-After never shortens the schedule.
    delay = next_delay(DEFAULT_SCHEDULE, 2, retry_after=1, rng=rng)
    assert delay is not None
    assert delay >= 300
    assert next_delay(DEFAULT_SCHEDULE, 1, retry_after=10**9, rng=rng) == MAX_RETRY_AFTER
    for odd in (float("nan"), float("inf"), -5.0):
        delay = next_delay(DEFAULT_SCHEDULE, 1, retry_after=odd, rng=rng)
        assert delay is not None
        assert 5 <= delay <= 6
