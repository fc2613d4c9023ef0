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


@pytest.fixture(autouse=True)
def readable_logs() -> Iterator[None]:
    """Logs as an operator reads them (key=value on stderr, debug included), in every test.

    Several tests read the log from ``capsys``; logging is process-wide, so without this what
    they see would depend on which module ran before them in the same test process.
    """
    from msgine.server.logging import configure_logging, reset_logging

    configure_logging(json=False, level="DEBUG")
    yield
    reset_logging()


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
