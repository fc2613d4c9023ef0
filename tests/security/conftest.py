"""Fixtures for the data-protection, audit and incident tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from msgine.server.logging import reset_logging
from support import Gateway, gateway_env, start_gateway


@pytest.fixture(autouse=True)
def live_messages_reach_the_simulator(request: pytest.FixtureRequest) -> None:
    """These tests are about who may see and change what, not which carrier takes a message:
    live sends through the in-process API go to the simulator (the staging setting) instead of
    being refused with no_route. The carrier tests cover routing."""
    if "api" in request.fixturenames:
        request.getfixturevalue("api").runtime.settings.allow_simulator_for_live = True


@pytest.fixture
def security_gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A gateway subprocess that flushes key usage every 0.2 s and keeps a security log."""
    env = gateway_env(
        tmp_path,
        MSGINE_USAGE_FLUSH_SECONDS="0.2",
        MSGINE_SECURITY_LOG_PATH=str(tmp_path / "security.log"),
    )
    gw = start_gateway(env, cwd=tmp_path)
    assert gw.api_key
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def clean_logging() -> Iterator[None]:
    yield
    reset_logging()
