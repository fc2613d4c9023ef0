"""SMPP over TLS: the SMSC's certificate is verified against the carrier's CA bundle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from smsc_support import MemoryEvents, Smsc, credentials, eventually, request, start_smsc

from msgine.server.carriers.smpp import SmppCarrier


@pytest.fixture
def tls_smsc(tmp_path: Path) -> Iterator[tuple[Smsc, Path]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    key_file, cert_file, ca_file = tmp_path / "key.pem", tmp_path / "cert.pem", tmp_path / "ca.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    ca.cert_pem.write_to_path(str(ca_file))
    peer = start_smsc("--tls-key", str(key_file), "--tls-cert", str(cert_file))
    try:
        yield peer, ca_file
    finally:
        peer.stop()


async def test_submit_over_tls(tls_smsc: tuple[Smsc, Path]) -> None:
    smsc, ca_file = tls_smsc
    carrier = SmppCarrier("tls", smsc.options(tls=True, ca_bundle=ca_file), credentials())
    await carrier.start(MemoryEvents())
    try:
        assert (await carrier.submit(request("over TLS"))).accepted
    finally:
        await carrier.stop()
    assert [m["text"] for m in smsc.state()["messages"]] == ["over TLS"]


async def test_an_untrusted_certificate_is_refused(
    tls_smsc: tuple[Smsc, Path], tmp_path: Path
) -> None:
    smsc, _ = tls_smsc
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    carrier = SmppCarrier("tls", smsc.options(tls=True, ca_bundle=other), credentials())
    await carrier.start(MemoryEvents())
    try:
        await eventually(lambda: carrier.health().detail is not None)
        assert carrier.health().detail == "connect failed: SSLCertVerificationError"
    finally:
        await carrier.stop()
    assert smsc.state()["binds"] == []


async def test_plain_smpp_to_a_tls_port_does_not_bind(tls_smsc: tuple[Smsc, Path]) -> None:
    smsc, _ = tls_smsc
    options = smsc.options(connect_timeout=1, response_timeout=1)
    carrier = SmppCarrier("plain", options, credentials())
    await carrier.start(MemoryEvents())
    try:
        await eventually(lambda: carrier.health().detail is not None)
        assert carrier.health().state == "down"
    finally:
        await carrier.stop()
