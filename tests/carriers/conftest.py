"""Fixtures of the carrier tests: the stub kind registered, an operator, a Node SMSC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import carrier_stub
import pytest
from carriers_helpers import Operator
from http_support import msgine_accepts
from smsc_support import Smsc, start_smsc

from webhook_receiver import Receiver, serving


@pytest.fixture(autouse=True)
def stub_kind() -> None:
    carrier_stub.register()


@pytest.fixture
def operator(runtime: Any, tmp_path: Path) -> Operator:
    return Operator(runtime, tmp_path)


@pytest.fixture
def provider() -> Iterator[Receiver]:
    """A MsGine stand-in over plain HTTP on 127.0.0.1 (loopback http is allowed): it accepts
    every send unless a test scripts other answers."""
    with serving(None, Receiver(default=msgine_accepts)) as receiver:
        yield receiver


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    peer = start_smsc()
    try:
        yield peer
    finally:
        peer.stop()
