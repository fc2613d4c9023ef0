"""remember_last: answers again only for the very same object, and never caches a failure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from msgine.server._memo import remember_last


def test_same_object_is_answered_again_without_a_call() -> None:
    calls: list[object] = []

    @remember_last
    def render(value: datetime) -> str:
        calls.append(value)
        return value.isoformat()

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert render(now) == render(now) == now.isoformat()
    assert len(calls) == 1
    equal_but_other = datetime(2026, 1, 1, tzinfo=UTC)
    assert render(equal_but_other) == now.isoformat()
    assert len(calls) == 2  # matched by identity, not by equality


def test_a_failing_call_is_not_remembered() -> None:
    calls = 0

    @remember_last
    def check(value: object) -> object:
        nonlocal calls
        calls += 1
        raise ValueError("bad")

    marker = object()
    for _ in range(2):
        with pytest.raises(ValueError):
            check(marker)
    assert calls == 2
