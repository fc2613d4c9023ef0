"""API7:2023 Server-side request forgery: where a caller chooses a URL the gateway will call.

Registered endpoints and per-message ``callbackUrl`` go through one policy: https only, every
resolved address public (an IPv6 address that embeds IPv4 is judged by what it embeds), only
allowed ports. A delivery that cannot reach an HTTP answer reports one generic code, so the
delivery log cannot map which ports of a host are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from msgine.server.errors import InsecureCallbackUrl
from msgine.server.logging import configure_logging, reset_logging
from msgine.server.webhooks import (
    DEFAULT_ALLOWED_PORTS,
    UrlPolicy,
    parse_port_ranges,
    resolve_and_check,
)
from support import free_port

# --- IPv6 addresses that embed a refused IPv4 address ------------------------------------------


def _local_nat64(v4: str, prefix_length: int) -> str:
    """``v4`` embedded in 64:ff9b:1::/48 at the position RFC 6052 gives ``prefix_length``."""
    packed = bytearray(ipaddress.IPv6Address("64:ff9b:1::").packed)
    octets = list(ipaddress.IPv4Address(v4).packed)
    if prefix_length == 96:
        packed[12:16] = bytes(octets)
    else:
        position = prefix_length // 8
        for octet in octets:
            if position == 8:  # the "u" octet stays zero
                position += 1
            packed[position] = octet
            position += 1
    return str(ipaddress.IPv6Address(bytes(packed)))


EMBEDDED = {
    # the review's findings: IPv4-translated (::ffff:0:0:0/96) and local-use NAT64
    "::ffff:0:7f00:1": "127.0.0.1",
    "::ffff:0:a9fe:a9fe": "169.254.169.254",
    "::ffff:0:a00:1": "10.0.0.1",
    "::ffff:0:0:0": "0.0.0.0",
    "64:ff9b:1:7f00:0:100:808:808": "127.0.0.1 at /48, 8.8.8.8 at /96",
    # every RFC 6052 position of the local-use prefix
    **{_local_nat64("127.0.0.1", n): f"127.0.0.1 at /{n}" for n in (48, 56, 64, 96)},
    **{_local_nat64("169.254.169.254", n): f"metadata at /{n}" for n in (48, 56, 64, 96)},
    # the well-known NAT64 prefix, IPv4-mapped and -compatible, 6to4, Teredo, ISATAP
    "64:ff9b::7f00:1": "127.0.0.1",
    "::ffff:10.0.0.1": "10.0.0.1",
    "::10.0.0.1": "10.0.0.1",
    "2002:a9fe:a9fe::1": "6to4 of 169.254.169.254",
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "Teredo of 127.0.0.1",
    "2606:4700:10::5efe:a00:1": "ISATAP of 10.0.0.1",
    "2606:4700:10::200:5efe:7f00:1": "ISATAP of 127.0.0.1",
}
# Refused even when MSGINE_WEBHOOK_ALLOW_PRIVATE opens private addresses for development.
ALWAYS_REFUSED = [
    "::ffff:0:7f00:1",
    "::ffff:0:a9fe:a9fe",
    "::ffff:0:0:0",
    "64:ff9b:1:7f00:0:100:808:808",
    _local_nat64("169.254.169.254", 56),
    "2002:a9fe:a9fe::1",
]


class Resolver:
    def __init__(self, answers: list[str]) -> None:
        self.answers = answers

    async def __call__(self, host: str, port: int) -> list[str]:
        return self.answers


@pytest.mark.parametrize("address", sorted(EMBEDDED))
async def test_addresses_embedding_a_private_ipv4_are_refused(address: str) -> None:
    for url, resolver in (
        (f"https://[{address}]/hook", Resolver([])),
        ("https://rebind.example/hook", Resolver([address])),
    ):
        with pytest.raises(InsecureCallbackUrl):
            await resolve_and_check(url, UrlPolicy(resolver=resolver))


@pytest.mark.parametrize("address", ALWAYS_REFUSED)
async def test_embedded_metadata_mapped_and_reserved_stay_refused_with_allow_private(
    address: str,
) -> None:
    policy = UrlPolicy(allow_private=True, resolver=Resolver([address]))
    with pytest.raises(InsecureCallbackUrl):
        await resolve_and_check("https://rebind.example/hook", policy)


@pytest.mark.parametrize("address", ["::1:0:0", "::8:8:8", "4000::1", "c000::1", "f000::1"])
async def test_ipv6_outside_global_unicast_is_refused(address: str) -> None:
    """Found by tests/fuzz: ::1:0:0 (IETF-reserved ::/8) was taken for a public address."""
    for allow_private in (False, True):
        policy = UrlPolicy(allow_private=allow_private, resolver=Resolver([address]))
        with pytest.raises(InsecureCallbackUrl):
            await resolve_and_check("https://odd.example/hook", policy)


@pytest.mark.parametrize(
    "address", ["64:ff9b::808:808", "2002:808:808::1", "2606:4700:10::5efe:808:808"]
)
async def test_embedding_a_public_ipv4_is_still_a_public_address(address: str) -> None:
    target = await resolve_and_check(f"https://[{address}]/", UrlPolicy(resolver=Resolver([])))
    assert target.addresses == (address,)


# --- the same policy through the API: registration and callbackUrl at send ----------------------


@pytest.fixture
def strict(api: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The gateway as deployed: private targets not allowed, the default ports."""
    monkeypatch.setattr(api.runtime.settings, "webhook_allow_private", False)
    monkeypatch.setattr(api.runtime.settings, "webhook_allowed_ports", DEFAULT_ALLOWED_PORTS)
    return api


SEND_REFUSED = [
    "https://127.0.0.1/cb",
    "https://[::ffff:0:7f00:1]/cb",
    "https://[64:ff9b:1:7f00:0:100:808:808]/cb",
    "https://169.254.169.254/latest/meta-data",
    "https://localhost/cb",
    "https://8.8.8.8:22/cb",
]


@pytest.mark.parametrize("url", ["https://[::ffff:0:7f00:1]/x", "https://[::ffff:0:0:0]/x"])
async def test_registration_refuses_embedded_loopback(strict: Any, url: str) -> None:
    response = await strict.client.post(
        "/api/v1/webhooks", json={"url": url}, headers=strict.headers()
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "insecure_callback_url"


@pytest.mark.parametrize("url", SEND_REFUSED)
async def test_callback_url_is_checked_at_send_and_nothing_is_stored(strict: Any, url: str) -> None:
    response = await strict.send(callbackUrl=url)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "insecure_callback_url"
    listed = await strict.client.get("/api/v1/messages", headers=strict.headers())
    assert listed.json()["total"] == 0


async def test_a_public_callback_url_is_accepted_at_send(strict: Any) -> None:
    response = await strict.send(callbackUrl="https://8.8.8.8:8443/cb")
    assert response.status_code == 201, response.text
    assert response.json()["callbackUrl"] == "https://8.8.8.8:8443/cb"


# --- ports ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", [22, 25, 80, 1023, 111])
async def test_well_known_ports_are_refused_at_registration(strict: Any, port: int) -> None:
    response = await strict.client.post(
        "/api/v1/webhooks", json={"url": f"https://8.8.8.8:{port}/x"}, headers=strict.headers()
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "insecure_callback_url"
    assert error["details"] == {"reason": "port_not_allowed"}


@pytest.mark.parametrize("port", [443, 1024, 8443, 65535])
async def test_https_and_unprivileged_ports_are_accepted(strict: Any, port: int) -> None:
    response = await strict.client.post(
        "/api/v1/webhooks", json={"url": f"https://8.8.8.8:{port}/x"}, headers=strict.headers()
    )
    assert response.status_code == 201, response.text


async def test_the_operator_can_allow_more_ports(
    strict: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(strict.runtime.settings, "webhook_allowed_ports", "443,8000-9000,22")
    ok = await strict.client.post(
        "/api/v1/webhooks", json={"url": "https://8.8.8.8:22/x"}, headers=strict.headers()
    )
    assert ok.status_code == 201, ok.text
    refused = await strict.client.post(
        "/api/v1/webhooks", json={"url": "https://8.8.8.8:9001/x"}, headers=strict.headers()
    )
    assert refused.json()["error"]["details"] == {"reason": "port_not_allowed"}


@pytest.mark.parametrize("text", ["", "0", "65536", "22-21", "https", "1,,2"])
def test_port_settings_are_checked(text: str) -> None:
    with pytest.raises(ValueError, match="port"):
        parse_port_ranges(text)


def test_the_port_setting_is_read_and_validated(tmp_path: Any) -> None:
    from pydantic import ValidationError

    from msgine.server.config import Settings
    from support import make_settings

    assert Settings(_env_file=None).webhook_allowed_ports == DEFAULT_ALLOWED_PORTS  # type: ignore[call-arg]
    assert make_settings(tmp_path, webhook_allowed_ports="443,22").webhook_allowed_ports
    with pytest.raises(ValidationError):
        make_settings(tmp_path, webhook_allowed_ports="443,70000")


# --- connection failures share one code in the delivery log --------------------------------------


@contextlib.contextmanager
def _tcp_server(reply: bytes | None) -> Iterator[int]:
    """A local TCP server that answers ``reply`` (not TLS, not HTTP) or, with None, never."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()
    held: list[socket.socket] = []

    def run() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            if reply is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(reply)
                    conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()
        for conn in held:
            conn.close()


@pytest.fixture
def operator_log(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    configure_logging(level="INFO")
    try:
        yield lambda: [
            json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()
        ]
    finally:
        reset_logging()


async def test_connection_failures_share_one_code_and_the_detail_stays_in_the_log(
    api: Any, monkeypatch: pytest.MonkeyPatch, operator_log: Any
) -> None:
    monkeypatch.setattr(api.runtime.settings, "webhook_timeout", 0.5)
    closed = free_port()
    with _tcp_server(b"SSH-2.0-OpenSSH_9.6\r\n") as banner, _tcp_server(None) as silent:
        endpoints = {}
        for name, port in (("closed", closed), ("banner", banner), ("silent", silent)):
            response = await api.client.post(
                "/api/v1/webhooks",
                json={"url": f"https://127.0.0.1:{port}/hook", "events": ["message.sent"]},
                headers=api.headers(),
            )
            assert response.status_code == 201, response.text
            endpoints[name] = response.json()["id"]
        await api.send()
        await api.drain()
        await asyncio.sleep(0)
    errors = {}
    for name, endpoint_id in endpoints.items():
        listed = await api.client.get(
            f"/api/v1/webhooks/{endpoint_id}/deliveries", headers=api.headers()
        )
        [delivery] = listed.json()["deliveries"]
        errors[name] = (delivery["lastError"], [a["error"] for a in delivery["attemptLog"]])
    assert errors == {name: ("connection_failed", ["connection_failed"]) for name in endpoints}
    causes = {
        entry["endpoint_id"]: entry["error"]
        for entry in operator_log()
        if entry.get("event") == "webhook_attempt_failed"
    }
    assert causes[endpoints["closed"]] == "connection_error"
    assert causes[endpoints["banner"]] in {"tls_error", "protocol_error"}
    assert causes[endpoints["silent"]] == "timeout"
