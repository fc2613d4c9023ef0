"""Webhook transport against real HTTPS receivers on 127.0.0.1 with certificates made by trustme."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import anyio
import httpcore
import pytest
import trustme

from msgine.server.webhooks._transport import (
    AttemptResult,
    PinnedNetworkBackend,
    WebhookSender,
    parse_retry_after,
)
from msgine.server.webhooks._urlpolicy import ResolvedTarget, UrlPolicy
from webhook_receiver import Hit, Receiver, Reply, serving

pytestmark = pytest.mark.anyio

CERT_NAMES = ("localhost", "127.0.0.1", "hooks.example", "rebind.example", "a.example", "b.example")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the receiver's routes ----------------------------------------------------------------------


def routes(hit: Hit) -> Reply:
    """What the shared HTTPS receiver answers on each path (``/redirect`` is built in)."""
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    noisy = "\x1b[31mboom\x1b[0m\r\nline\x00two \u202eevil\u202c " + "z" * 5000
    return {
        "/ok": Reply(),
        "/slow": Reply(body=b"", delay=600),  # until the module's receiver closes
        "/huge": Reply(endless=b"x" * 65536),
        "/created": Reply(204, body=b""),
        "/fail": Reply(500, body=b"internal failure"),
        "/noisy": Reply(502, body=noisy.encode() + b"\xff\xfe"),
        "/gone": Reply(410, body=b"gone"),
        "/limited": Reply(429, {"Retry-After": "7"}, b""),
        "/unavailable": Reply(503, {"Retry-After": later}, b""),
    }.get(hit.path, Reply(404, body=b"no such route"))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def receiver(ca: trustme.CA) -> Iterator[Receiver]:
    with serving(ca, Receiver(default=routes), names=CERT_NAMES) as rec:
        yield rec


@pytest.fixture(scope="module")
def untrusted_receiver() -> Iterator[Receiver]:
    with serving(trustme.CA(), Receiver(default=routes), names=CERT_NAMES) as rec:
        yield rec


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


# --- helpers -----------------------------------------------------------------------------------


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """The real network backend, noting every TCP connection it is asked to open."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        return await self.inner.connect_tcp(host, port, timeout=timeout)


class FixedResolver:
    """Answers every name with the next entry of a script, recording the lookups."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


def loopback_policy(resolver: FixedResolver | None = None) -> UrlPolicy:
    return UrlPolicy(allow_private=True, resolver=resolver or FixedResolver(["127.0.0.1"]))


HEADERS = {"Content-Type": "application/json", "webhook-id": "evt_1"}


# --- outcomes ----------------------------------------------------------------------------------


async def test_success_posts_body_and_headers_to_the_hostname(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    body = '{"id":"evt_1","event":"message.sent","to":"é"}'.encode()
    async with WebhookSender(loopback_policy(), ssl_context=client_context) as sender:
        result = await sender.send(f"https://hooks.example:{receiver.port}/ok?x=1", body, HEADERS)
    assert result.ok
    assert not result.gone
    assert (result.status_code, result.error) == (200, None)
    assert result.excerpt == '{"received":true}'
    assert result.latency_ms >= 0
    hit = next(h for h in receiver.hits if (h.path, h.query, h.body) == ("/ok", "x=1", body))
    assert hit.headers["host"] == f"hooks.example:{receiver.port}"
    assert hit.headers["user-agent"] == "MsGine-Webhooks/1.0"
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["webhook-id"] == "evt_1"
    assert hit.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize(
    ("path", "status", "error", "gone"),
    [
        ("/created", 204, None, False),
        ("/fail", 500, "http_500", False),
        ("/gone", 410, "http_410", True),
        ("/missing", 404, "http_404", False),
    ],
)
async def test_http_statuses(
    receiver: Receiver,
    client_context: ssl.SSLContext,
    path: str,
    status: int,
    error: str | None,
    gone: bool,
) -> None:
    async with WebhookSender(loopback_policy(), ssl_context=client_context) as sender:
        result = await sender.send(f"https://hooks.example:{receiver.port}{path}", b"{}", HEADERS)
    assert (result.status_code, result.error, result.gone) == (status, error, gone)
    assert result.ok is (error is None)
    assert result.retry_after is None


async def test_429_reports_retry_after_seconds(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    async with WebhookSender(loopback_policy(), ssl_context=client_context) as sender:
        result = await sender.send(f"https://hooks.example:{receiver.port}/limited", b"{}", HEADERS)
    assert (result.status_code, result.error, result.retry_after) == (429, "http_429", 7.0)


async def test_503_reports_retry_after_http_date(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    async with WebhookSender(loopback_policy(), ssl_context=client_context) as sender:
        result = await sender.send(
            f"https://hooks.example:{receiver.port}/unavailable", b"{}", HEADERS
        )
    assert result.status_code == 503
    assert result.retry_after is not None
    assert 0 < result.retry_after <= 3600


async def test_redirects_are_not_followed(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    async with WebhookSender(loopback_policy(), ssl_context=client_context) as sender:
        result = await sender.send(f"https://hooks.example:{receiver.port}/redirect", b"{}", {})
    assert (result.status_code, result.error, result.ok) == (302, "redirect_not_followed", False)
    assert receiver.hits_for("/redirect")
    assert receiver.hits_for("/target") == []


async def test_a_receiver_slower_than_the_timeout_is_a_timeout(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    policy = loopback_policy()
    async with WebhookSender(policy, ssl_context=client_context, timeout=0.3) as sender:
        result = await sender.send(f"https://hooks.example:{receiver.port}/slow", b"{}", HEADERS)
    assert (result.status_code, result.error, result.excerpt) == (None, "timeout", "")


async def test_an_endless_response_is_cut_at_the_read_cap(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    # Without the cap the read would never end and the attempt would fail as a timeout.
    async with WebhookSender(
        loopback_policy(), ssl_context=client_context, max_response_bytes=256 * 1024
    ) as sender:
        result = await sender.send(f"https://hooks.example:{receiver.port}/huge", b"{}", HEADERS)
    assert (result.status_code, result.error) == (200, None)
    assert result.excerpt == "x" * 256


async def test_excerpt_is_short_and_printable(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    async with WebhookSender(loopback_policy(), ssl_context=client_context) as sender:
        result = await sender.send(f"https://hooks.example:{receiver.port}/noisy", b"{}", HEADERS)
    assert result.error == "http_502"
    assert result.excerpt.startswith("[31mboom[0m linetwo evil zzz")
    assert len(result.excerpt) == 256
    assert all(ch.isprintable() for ch in result.excerpt)
    assert "\u202e" not in result.excerpt


async def test_secrets_in_headers_do_not_reach_the_result(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    signature = "v1,c2VjcmV0LXNpZ25hdHVyZS12YWx1ZQ=="
    async with WebhookSender(loopback_policy(), ssl_context=client_context) as sender:
        result = await sender.send(
            f"https://hooks.example:{receiver.port}/fail",
            b'{"message":"private text"}',
            {**HEADERS, "webhook-signature": signature},
        )
    assert signature not in repr(result)
    assert "private text" not in repr(result)


# --- TLS ---------------------------------------------------------------------------------------


async def test_untrusted_certificate_is_a_tls_error(
    untrusted_receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    async with WebhookSender(loopback_policy(), ssl_context=client_context) as sender:
        result = await sender.send(
            f"https://hooks.example:{untrusted_receiver.port}/ok", b"{}", HEADERS
        )
    assert (result.status_code, result.error) == (None, "tls_error")
    assert untrusted_receiver.hits == []


async def test_default_trust_store_does_not_trust_a_private_ca(receiver: Receiver) -> None:
    async with WebhookSender(loopback_policy()) as sender:
        result = await sender.send(f"https://hooks.example:{receiver.port}/ok", b"{}", HEADERS)
    assert result.error == "tls_error"


async def test_certificate_must_match_the_hostname(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    async with WebhookSender(loopback_policy(), ssl_context=client_context) as sender:
        result = await sender.send(f"https://other.example:{receiver.port}/ok", b"{}", HEADERS)
    assert result.error == "tls_error"


async def test_ca_bundle_adds_a_trusted_ca(
    receiver: Receiver, ca: trustme.CA, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    async with WebhookSender(loopback_policy(), ca_bundle=str(bundle)) as sender:
        result = await sender.send(f"https://hooks.example:{receiver.port}/ok", b"{}", HEADERS)
    assert result.ok


@pytest.mark.parametrize("weaken", ["no_verify", "no_hostname"])
def test_contexts_that_do_not_verify_are_rejected(weaken: str) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    if weaken == "no_verify":
        context.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="verify"):
        WebhookSender(UrlPolicy(), ssl_context=context)


def test_context_and_ca_bundle_are_exclusive(client_context: ssl.SSLContext) -> None:
    with pytest.raises(ValueError, match="either"):
        WebhookSender(UrlPolicy(), ssl_context=client_context, ca_bundle="/nonexistent.pem")


# --- address pinning and pooling ---------------------------------------------------------------


async def test_localhost_reaches_the_server_through_its_checked_address(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    backend = RecordingBackend()
    policy = UrlPolicy(allow_private=True)  # the system resolver
    async with WebhookSender(policy, ssl_context=client_context, network_backend=backend) as sender:
        result = await sender.send(f"https://localhost:{receiver.port}/ok", b"{}", HEADERS)
    assert result.ok
    assert ("127.0.0.1", receiver.port) in backend.connects
    assert all(host in {"127.0.0.1", "::1"} for host, _ in backend.connects)


async def test_dns_rebinding_cannot_move_the_connection(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    """The checked answer is the address used; a later, different answer is checked anew."""
    resolver = FixedResolver(["127.0.0.1"], ["169.254.169.254"])
    backend = RecordingBackend()
    async with WebhookSender(
        loopback_policy(resolver), ssl_context=client_context, network_backend=backend
    ) as sender:
        url = f"https://rebind.example:{receiver.port}/ok"
        first = await sender.send(url, b'{"n":1}', HEADERS)
        assert first.ok
        assert resolver.calls == ["rebind.example"]
        assert backend.connects == [("127.0.0.1", receiver.port)]
        hit = next(h for h in receiver.hits if h.body == b'{"n":1}')
        assert hit.headers["host"] == f"rebind.example:{receiver.port}"

        # The name now points at the metadata service: refused although a connection is open.
        second = await sender.send(url, b'{"n":2}', HEADERS)
        assert (second.status_code, second.error) == (None, "refused_address")
        assert resolver.calls == ["rebind.example", "rebind.example"]
        assert backend.connects == [("127.0.0.1", receiver.port)]
        assert not any(h.body == b'{"n":2}' for h in receiver.hits)


async def test_keep_alive_reuses_one_connection_per_hostname(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    backend = RecordingBackend()
    async with WebhookSender(
        loopback_policy(), ssl_context=client_context, network_backend=backend
    ) as sender:
        for host in ("a.example", "a.example", "a.example", "b.example", "b.example"):
            result = await sender.send(f"https://{host}:{receiver.port}/ok", b"{}", HEADERS)
            assert result.ok
    # Same address, but each hostname gets its own connection and its own certificate check.
    assert backend.connects == [("127.0.0.1", receiver.port)] * 2


async def test_falls_back_to_the_next_checked_address(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    closed = _unused_loopback_port()
    resolver = FixedResolver(["127.0.0.1"])
    backend = RecordingBackend()
    async with WebhookSender(
        loopback_policy(resolver), ssl_context=client_context, network_backend=backend
    ) as sender:
        refused = await sender.send(f"https://hooks.example:{closed}/ok", b"{}", HEADERS)
    assert (refused.status_code, refused.error) == (None, "connection_error")
    assert backend.connects == [("127.0.0.1", closed)]


async def test_many_concurrent_deliveries_share_a_small_pool(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    results: list[AttemptResult] = []
    async with WebhookSender(
        loopback_policy(), ssl_context=client_context, max_connections=4
    ) as sender:

        async def deliver(n: int) -> None:
            url = f"https://hooks.example:{receiver.port}/ok"
            results.append(await sender.send(url, b'{"n":%d}' % n, HEADERS))

        async with anyio.create_task_group() as group:
            for n in range(40):
                group.start_soon(deliver, n)
    assert len(results) == 40
    assert all(r.ok for r in results)


async def test_pinned_backend_connects_only_for_its_checked_target(receiver: Receiver) -> None:
    recording = RecordingBackend()
    target = ResolvedTarget(
        url=f"https://hooks.example:{receiver.port}/",
        host="hooks.example",
        port=receiver.port,
        addresses=("127.0.0.1",),
    )
    backend = PinnedNetworkBackend(target, recording)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("other.example", receiver.port)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("hooks.example", receiver.port + 1)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_unix_socket("/tmp/socket")
    assert recording.connects == []
    stream = await backend.connect_tcp("hooks.example", receiver.port)
    await stream.aclose()
    assert recording.connects == [("127.0.0.1", receiver.port)]
    assert backend.connected_address == "127.0.0.1"


async def test_kept_alive_connection_is_not_reused_for_a_newly_checked_address(
    receiver: Receiver, client_context: ssl.SSLContext
) -> None:
    """Reuse needs the connection's address in the current answer: a new answer, a new socket."""
    resolver = FixedResolver(["127.0.0.1"], ["127.0.0.1"], ["::1"])
    backend = RecordingBackend()
    async with WebhookSender(
        loopback_policy(resolver), ssl_context=client_context, network_backend=backend
    ) as sender:
        url = f"https://hooks.example:{receiver.port}/ok"
        assert (await sender.send(url, b"{}", HEADERS)).ok
        assert (await sender.send(url, b"{}", HEADERS)).ok
        moved = await sender.send(url, b"{}", HEADERS)  # nothing listens on [::1]:port
    assert moved.error == "connection_error"
    assert backend.connects == [("127.0.0.1", receiver.port), ("::1", receiver.port)]


# --- refusals before any connection ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow_private", "error"),
    [
        ("http://hooks.example:{port}/ok", True, "insecure_url"),
        ("https://127.0.0.1:{port}/ok", False, "refused_address"),
        ("https://[::1]:{port}/ok", False, "refused_address"),
        ("https://10.0.0.1:{port}/ok", False, "refused_address"),
        ("https://100.64.0.1:{port}/ok", False, "refused_address"),
        ("https://[::ffff:127.0.0.1]:{port}/ok", False, "refused_address"),
        ("https://[::ffff:127.0.0.1]:{port}/ok", True, "refused_address"),
        ("https://169.254.169.254:{port}/ok", False, "refused_address"),
        ("https://169.254.169.254:{port}/ok", True, "refused_address"),
        ("https://localhost:{port}/ok", False, "refused_address"),
        ("https://evil.example:{port}/ok", False, "refused_address"),
        ("https://user:pw@hooks.example:{port}/ok", True, "invalid_url"),
    ],
)
async def test_refused_destinations_open_no_socket(
    receiver: Receiver,
    client_context: ssl.SSLContext,
    url: str,
    allow_private: bool,
    error: str,
) -> None:
    resolver = FixedResolver(["10.0.0.5"] if not allow_private else ["127.0.0.1"])
    backend = RecordingBackend()
    connections_before = receiver.connections
    policy = UrlPolicy(allow_private=allow_private, resolver=resolver)
    async with WebhookSender(policy, ssl_context=client_context, network_backend=backend) as s:
        result = await s.send(url.format(port=receiver.port), b"{}", HEADERS)
    assert (result.status_code, result.error, result.ok) == (None, error, False)
    assert backend.connects == []
    assert receiver.connections == connections_before


async def test_unresolvable_host_is_a_dns_error(client_context: ssl.SSLContext) -> None:
    backend = RecordingBackend()
    policy = UrlPolicy(resolver=FixedResolver([]))
    async with WebhookSender(policy, ssl_context=client_context, network_backend=backend) as s:
        result = await s.send("https://nowhere.example/ok", b"{}", HEADERS)
    assert result.error == "dns_error"
    assert backend.connects == []


@pytest.mark.parametrize(
    "headers",
    [{"Host": "evil.example"}, {"Content-Length": "1"}, {"X-Note": "a\r\nInjected: 1"}],
)
async def test_unsafe_caller_headers_are_programming_errors(headers: dict[str, str]) -> None:
    async with WebhookSender(loopback_policy()) as sender:
        with pytest.raises(ValueError):
            await sender.send("https://hooks.example/ok", b"{}", headers)


# --- Retry-After parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("9" * 40, None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=now) == expected


def _unused_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
