"""Outbound webhook HTTP: one POST attempt to a customer URL, SSRF-safe, never raising on failure.

Every attempt re-checks the URL with the policy and connects only to the addresses that check
returned (DNS rebinding cannot swap the address in between), while the hostname stays in use for
SNI, certificate verification and the Host header. A kept-alive connection is reused only for the
same hostname and port and only if the address it went to is among those the current attempt's
check accepted, so no request ever travels to an address its own check did not approve.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ssl
import time
import unicodedata
from collections.abc import AsyncGenerator, Iterable, Mapping
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
#: What the API caller's delivery log shows for any failure to reach an HTTP answer. Telling a
#: refused connection from a timeout, a TLS or a protocol failure would turn the delivery log
#: into a port scanner; the precise cause stays in ``error``, for the operator's log only.
CONNECTION_FAILED: Final = "connection_failed"
_CONNECTION_CAUSES: Final = frozenset(
    {"timeout", "tls_error", "protocol_error", "connection_error"}
)


@dataclass(frozen=True)
class AttemptResult:
    """The outcome of one delivery attempt. ``error`` is the precise cause, for the operator's
    log; ``reported_error`` is what the delivery log shows."""

    status_code: int | None
    latency_ms: int
    error: str | None
    excerpt: str
    retry_after: float | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def reported_error(self) -> str | None:
        """The error as the API caller may see it (connection failures share one code)."""
        return CONNECTION_FAILED if self.error in _CONNECTION_CAUSES else self.error

    @property
    def gone(self) -> bool:
        """410: the receiver asks for the endpoint to be disabled."""
        return self.status_code == 410


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Opens a connection's TCP stream to the addresses checked for its target, and nowhere else.

    The hostname httpcore asks for is never resolved: it only has to match the checked target.
    """

    def __init__(
        self, target: ResolvedTarget, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._target = target
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()
        self.connected_address: str | None = None

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if (host, port) != (self._target.host, self._target.port):
            raise httpcore.ConnectError("connection target was not checked by the URL policy")
        last_error: Exception | None = None
        for address in self._target.addresses:
            try:
                stream = await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
                continue
            self.connected_address = address
            return stream
        raise last_error or httpcore.ConnectError("no checked address to connect to")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are never delivered over unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass(frozen=True)
class _Pooled:
    connection: httpcore.AsyncHTTPConnection
    backend: PinnedNetworkBackend


class _KeepAlivePool:
    """Idle HTTP/1.1 connections per (host, port), each bound to the checked address it went to.

    Own code rather than httpcore's AsyncConnectionPool: that pool rescans every connection (and
    polls every socket) whenever a request starts or ends, which cost about five times the CPU
    per delivery at 64 concurrent deliveries. Here a request only looks at its own host's idle
    connections. Concurrency is bounded by the sender, so this only has to bound idle ones.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        keepalive_expiry: float,
        max_idle: int,
        network_backend: httpcore.AsyncNetworkBackend | None,
    ) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._max_idle = max_idle
        self._network_backend = network_backend
        self._idle: dict[tuple[str, int], list[_Pooled]] = {}
        self._idle_count = 0
        self._next_sweep = time.monotonic() + keepalive_expiry
        self._closed = False

    async def acquire(self, target: ResolvedTarget) -> _Pooled:
        """A reusable connection to one of the target's checked addresses, else a new one."""
        stack = self._idle.get((target.host, target.port), [])
        while stack:
            pooled = stack.pop()
            self._idle_count -= 1
            if pooled.backend.connected_address in target.addresses and _reusable(pooled):
                return pooled
            await pooled.connection.aclose()
        backend = PinnedNetworkBackend(target, self._network_backend)
        connection = httpcore.AsyncHTTPConnection(
            origin=httpcore.Origin(b"https", target.host.encode("ascii"), target.port),
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=backend,
        )
        return _Pooled(connection, backend)

    async def release(self, target: ResolvedTarget, pooled: _Pooled) -> None:
        if not self._closed and self._idle_count < self._max_idle and _reusable(pooled):
            self._idle.setdefault((target.host, target.port), []).append(pooled)
            self._idle_count += 1
        else:
            await pooled.connection.aclose()
        if time.monotonic() >= self._next_sweep:
            await self._sweep()

    async def aclose(self) -> None:
        self._closed = True
        idle = [pooled for stack in self._idle.values() for pooled in stack]
        self._idle.clear()
        self._idle_count = 0
        for pooled in idle:
            await pooled.connection.aclose()

    async def _sweep(self) -> None:
        """Close idle connections that expired, so hosts not seen again do not hold sockets."""
        self._next_sweep = time.monotonic() + self._keepalive_expiry
        for key, stack in list(self._idle.items()):
            kept: list[_Pooled] = []
            expired: list[_Pooled] = []
            for pooled in stack:
                (kept if _reusable(pooled) else expired).append(pooled)
            self._idle_count -= len(expired)
            stack[:] = kept  # in place: an acquire may be popping from this very list
            if not kept and self._idle.get(key) is stack:
                del self._idle[key]
            for pooled in expired:
                await pooled.connection.aclose()


def _reusable(pooled: _Pooled) -> bool:
    return pooled.connection.is_available() and not pooled.connection.has_expired()


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
        self._pool = _KeepAlivePool(
            ssl_context=context,
            keepalive_expiry=keepalive_expiry,
            max_idle=max_connections,
            network_backend=network_backend,
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
            except (httpcore.NetworkError, OSError) as exc:
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
        pooled = await self._pool.acquire(target)
        try:
            async with pooled.connection.stream(
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
            await self._pool.release(target, pooled)

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
