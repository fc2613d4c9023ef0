"""Fixtures for the data-protection, audit and incident tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from msgine.server.logging import reset_logging
from support import Gateway, gateway_env, start_gateway


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
