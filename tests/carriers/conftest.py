"""Fixtures of the carrier tests: the stub kind registered, an operator, a Node SMSC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import carrier_stub
import pytest
from carriers_helpers import Operator
from smsc_support import Smsc, start_smsc


@pytest.fixture(autouse=True)
def stub_kind() -> None:
    carrier_stub.register()


@pytest.fixture
def operator(runtime: Any, tmp_path: Path) -> Operator:
    return Operator(runtime, tmp_path)


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    peer = start_smsc()
    try:
        yield peer
    finally:
        peer.stop()
