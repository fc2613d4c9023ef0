"""Webhook fixtures: a CA the gateway trusts, and a scriptable HTTPS receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from msgine.server.logging import configure_logging, reset_logging
from support import make_settings
from webhook_receiver import Receiver, serving


@pytest.fixture(scope="session")
def webhook_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_bundle(webhook_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The receiver's CA as a PEM file, for MSGINE_WEBHOOK_CA_BUNDLE."""
    path = tmp_path_factory.mktemp("ca") / "receiver-ca.pem"
    webhook_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def receiver(webhook_ca: trustme.CA) -> Iterator[Receiver]:
    """A real HTTPS receiver on 127.0.0.1 with a certificate from the test CA."""
    with serving(webhook_ca) as rec:
        yield rec


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, ca_bundle: Path) -> Any:
    """The suite's settings, trusting the receiver CA, with a short delivery timeout."""
    return make_settings(tmp_path, database_url, webhook_ca_bundle=ca_bundle, webhook_timeout=1.0)


@pytest.fixture
def security_log(tmp_path: Path) -> Iterator[Path]:
    """The gateway's security log, written to a file for the test to read."""
    path = tmp_path / "security.log"
    configure_logging(security_log_path=str(path))
    try:
        yield path
    finally:
        reset_logging()
