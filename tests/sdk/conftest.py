"""Fixtures for the SDK tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sdk_helpers import ScriptedServer

from msgine._keyformat import generate_key


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


@pytest.fixture
def api_key() -> str:
    return generate_key("test")
