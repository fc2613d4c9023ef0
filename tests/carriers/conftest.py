"""Fixtures for the carrier tests: a Node SMSC per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from smsc_support import Smsc, start_smsc


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    peer = start_smsc()
    try:
        yield peer
    finally:
        peer.stop()
