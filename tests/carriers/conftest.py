"""Fixtures of the carrier framework's tests: the stub kind registered, and an operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import carrier_stub
import pytest
from carriers_helpers import Operator


@pytest.fixture(autouse=True)
def stub_kind() -> None:
    carrier_stub.register()


@pytest.fixture
def operator(runtime: Any, tmp_path: Path) -> Operator:
    return Operator(runtime, tmp_path)
