"""Outbound webhook HTTP: one POST attempt to a customer URL, SSRF-safe, never raising on failure.

Every attempt re-checks the URL with the policy and connects only to the addresses that check
returned (DNS rebinding cannot swap the address in between), while the hostname stays in use for
SNI, certificate verification and the Host header. Built on httpcore rather than httpx because
the only thing needed here is a connection pool with a pluggable network backend, and httpcore
exposes that as public API.

Connection reuse: the pool keys connections by (scheme, host, port). A kept-alive connection may
therefore go to an address checked for the same hostname by an earlier attempt, under the same
policy, rather than to one from the latest answer. That is safe: every connection ever opened went
to an address the policy accepted for that hostname, with a certificate verified for that
hostname, and each attempt still refuses outright if any current answer is disallowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ssl
import time
import unicodedata
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC
from types import TracebackType
from typing import Final, Self, cast

import httpcore
import httpx

from msgine.server.errors import DomainError, InsecureCallbackUrl
from msgine.server.webhooks._urlpolicy import ResolvedTarget, UrlPolicy, resolve_and_check

EXCERPT_CHARS: Final = 256
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
# Set by the sender, never by callers: framing and routing stay under the transport's control.
_RESERVED_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_STRIPPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co"})

# The checked target of the delivery running in the current task; read by the network backend.
_PINNED_TARGET: ContextVar[ResolvedTarget | None] = ContextVar(
    "msgine_webhook_pinned_target", default=None
)


@dataclass(frozen=True)
class AttemptResult:
    """The outcome of one delivery attempt, safe to store and log as it is."""

    status_code: int | None
    latency_ms: int
    error: str | None
    excerpt: str
    retry_after: float | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410: the receiver asks for the endpoint to be disabled."""
        return self.status_code == 410


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to the addresses the URL policy checked for this delivery.

    Fails closed: a connection requested outside a delivery, or for another host or port than the
    checked one, is refused without touching the network.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        target = _PINNED_TARGET.get()
        if target is None or target.host != host or target.port != port:
            raise httpcore.ConnectError("connection target was not checked by the URL policy")
        last_error: Exception | None = None
        for address in target.addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # a ResolvedTarget always has at least one address
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are never delivered over unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def build_ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """The default verifying context (certifi roots), plus an operator CA bundle if given."""
    context = httpcore.default_ssl_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class WebhookSender:
    """Sends webhook POSTs over a shared keep-alive pool; one instance per process."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        timeout: float = 10.0,
        ca_bundle: str | None = None,
        max_connections: int = 100,
        user_agent: str = "MsGine-Webhooks/1.0",
        ssl_context: ssl.SSLContext | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        keepalive_expiry: float = 15.0,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        if ssl_context is not None and ca_bundle is not None:
            raise ValueError("pass either ssl_context or ca_bundle, not both")
        context = ssl_context if ssl_context is not None else build_ssl_context(ca_bundle)
        if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
            raise ValueError("webhook TLS contexts must verify certificates and hostnames")
        self._policy = policy
        self._timeout = timeout
        self._user_agent = user_agent
        self._max_response_bytes = max_response_bytes
        # Attempts wait for a free slot before their clock starts, so queueing behind other
        # deliveries never counts against a receiver's 10 seconds.
        self._slots = asyncio.Semaphore(max_connections)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=PinnedNetworkBackend(network_backend),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> AttemptResult:
        """POST body to url once. Network and HTTP failures come back as a failed result."""
        request_headers = self._request_headers(headers)
        async with self._slots:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._timeout):
                    target = await resolve_and_check(url, self._policy)
                    status, retry_after, prefix = await self._post(target, body, request_headers)
            except DomainError as exc:
                return _failed(started, _policy_error(exc))
            except (TimeoutError, httpcore.TimeoutException):
                return _failed(started, "timeout")
            except httpcore.RemoteProtocolError as exc:
                return _failed(started, "tls_error" if _caused_by_tls(exc) else "protocol_error")
            except httpcore.NetworkError as exc:
                return _failed(started, "tls_error" if _caused_by_tls(exc) else "connection_error")
            return AttemptResult(
                status_code=status,
                latency_ms=_elapsed_ms(started),
                error=_status_error(status),
                excerpt=_excerpt(prefix),
                retry_after=retry_after,
            )

    def _request_headers(self, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
        names = {name.lower() for name in headers}
        if names & _RESERVED_HEADERS:
            raise ValueError("webhook headers must not set Host, framing or Connection headers")
        result = [] if "user-agent" in names else [(b"User-Agent", self._user_agent.encode())]
        if "accept-encoding" not in names:
            # Compressed answers would need decompressing, and a small one can expand hugely.
            result.append((b"Accept-Encoding", b"identity"))
        for name, value in headers.items():
            if any(ch in value for ch in "\r\n\0"):
                raise ValueError("webhook header values must not contain line breaks")
            result.append((name.encode("ascii"), value.encode("latin-1")))
        return result

    async def _post(
        self, target: ResolvedTarget, body: bytes, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, float | None, bytes]:
        parsed = httpx.URL(target.url)
        request_url = httpcore.URL(
            scheme=b"https",
            host=target.host.encode("ascii"),
            port=target.port,
            target=parsed.raw_path,
        )
        timeouts = dict.fromkeys(("connect", "read", "write", "pool"), self._timeout)
        token = _PINNED_TARGET.set(target)
        try:
            async with self._pool.stream(
                "POST",
                request_url,
                headers=[(b"Host", parsed.netloc), *headers],
                content=body,
                extensions={"timeout": timeouts},
            ) as response:
                prefix = await self._read_capped(response)
                retry_after = None
                if response.status in _RETRY_AFTER_STATUSES:
                    retry_after = parse_retry_after(_header(response.headers, b"retry-after"))
                return response.status, retry_after, prefix
        finally:
            _PINNED_TARGET.reset(token)

    async def _read_capped(self, response: httpcore.Response) -> bytes:
        """Read at most the cap, keeping only the start; stopping early drops the connection."""
        prefix = b""
        received = 0
        chunks = cast(AsyncGenerator[bytes, None], response.aiter_stream())
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                if len(prefix) < EXCERPT_CHARS * 4:
                    prefix += chunk[: EXCERPT_CHARS * 4 - len(prefix)]
                received += len(chunk)
                if received > self._max_response_bytes:
                    break
        return prefix


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value) if len(value) <= 12 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _excerpt(raw: bytes) -> str:
    """A short, printable start of the body: enough to diagnose, never the whole response."""
    text = raw.decode("utf-8", errors="replace")
    kept = (
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in _STRIPPED_CATEGORIES
    )
    return " ".join("".join(kept).split())[:EXCERPT_CHARS]


def _status_error(status: int) -> str | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return "redirect_not_followed"
    return f"http_{status}"


def _policy_error(exc: DomainError) -> str:
    reason = exc.details.get("reason")
    if reason == "insecure_scheme":
        return "insecure_url"
    if reason == "unresolvable_host":
        return "dns_error"
    if isinstance(exc, InsecureCallbackUrl):
        return "refused_address"
    return "invalid_url"


def _caused_by_tls(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _failed(started: float, error: str) -> AttemptResult:
    return AttemptResult(
        status_code=None,
        latency_ms=_elapsed_ms(started),
        error=error,
        excerpt="",
        retry_after=None,
    )
