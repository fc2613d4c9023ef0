"""The shared part of every HTTP upstream kind (MsGine's hosted API, Africa's Talking, Twilio).

A kind subclasses :class:`HttpUpstream` and writes one coroutine, ``send``: the provider's
request for a group of recipients and its answer mapped through the kind's answer table (rows
of :class:`Rule`). This module does the rest, the same way for every provider:

- **the client**: one ``httpx.AsyncClient`` per carrier and worker process, TLS always verified
  (the system's roots, plus the carrier's ``ca_bundle`` if set: trust can be added, never
  removed), no redirects followed, no proxy or CA settings taken from the environment, timeouts
  from the carrier's options. ``http://`` is accepted only for a loopback host (a relay on the
  same machine), since a credential would otherwise cross the network in clear;
- **batching**: submits the worker makes together (one batch, concurrently) that share their
  text and sender are grouped, up to the kind's ``batch_size``, into one request;
- **throughput**: the carrier's ``throughput`` cap, shared by all workers (``_throttle.py``);
- **failures**: a connection that could not be made (refused, DNS, TLS, connect timeout) sent
  nothing: retry, then failover. A failure after the request went out (read timeout, dropped
  connection) leaves the outcome unknown: retried for kinds whose submits are idempotent (the
  provider dedupes the resend), else raised so the gateway's crash policy applies. 429 and 5xx
  are retried honouring ``Retry-After``; each kind's table maps its own answers;
- **health**: ``degraded_after`` failures in a row (transport errors, 429, 5xx) mark the
  carrier ``degraded`` in ``/readyz``, ``carriers status`` and ``msgine_carrier_up`` (0.5); the
  next success marks it ``up``.

Nothing here logs or returns a credential, a number or a text: details are status words.
"""

from __future__ import annotations

import abc
import asyncio
import email.utils
import ipaddress
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from msgine.server.carriers._base import CarrierEvents, CarrierHealth, SubmitRequest, SubmitResult
from msgine.server.carriers._throttle import Throttle
from msgine.server.logging import get_logger
from msgine.server.webhooks import build_ssl_context

log = get_logger("msgine.carriers")

Outcome = Literal["accepted", "retry", "failover", "fail"]
#: The longest ``Retry-After`` honoured (a provider asking for more gets this, then failover).
MAX_RETRY_AFTER = 3600.0
_LOOPBACK_NAMES = frozenset({"localhost"})


class UpstreamOptions(BaseModel):
    """Settings every HTTP upstream has; a kind's options model subclasses it. Seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(min_length=8, max_length=500)
    #: PEM file of extra CA(s) to trust for the upstream (a private CA); added to the system's.
    ca_bundle: Path | None = None
    connect_timeout: float = Field(default=5.0, gt=0, le=60)
    #: Longest wait for the upstream's answer once the request is sent.
    timeout: float = Field(default=15.0, gt=0, le=120)
    max_connections: int = Field(default=20, ge=1, le=1000)
    #: Messages per second across all worker processes; None: no cap.
    throughput: float | None = Field(default=None, gt=0, le=100_000)
    #: Recipients per request where the provider takes several (1: one request each).
    batch_size: int = Field(default=1, ge=1, le=1000)
    #: Failures in a row after which the carrier shows as degraded.
    degraded_after: int = Field(default=3, ge=1, le=1000)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return check_base_url(value)

    @field_validator("ca_bundle")
    @classmethod
    def _check_bundle(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("ca_bundle must be a readable PEM file")
        return value


def check_base_url(value: str) -> str:
    """An https URL, or http to a loopback host; no credentials, query or fragment in it."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("base_url must be an https:// URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("base_url takes no credentials, query or fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("base_url must use https (http only to a loopback address)")
    return value.strip().rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """The verifying context of an upstream client; refuses to exist unverified."""
    context = build_ssl_context(str(ca_bundle) if ca_bundle else None)
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise ValueError("upstream TLS contexts must verify certificates and hostnames")
    return context


def build_client(options: UpstreamOptions, **kwargs: object) -> httpx.AsyncClient:
    """The outbound client of one carrier (``kwargs``: e.g. ``auth``, ``headers``)."""
    timeout = httpx.Timeout(options.timeout, connect=options.connect_timeout, pool=options.timeout)
    limits = httpx.Limits(
        max_connections=options.max_connections,
        max_keepalive_connections=options.max_connections,
    )
    return httpx.AsyncClient(
        base_url=options.base_url,
        verify=tls_context(options.ca_bundle),
        timeout=timeout,
        limits=limits,
        follow_redirects=False,
        trust_env=False,
        **kwargs,  # type: ignore[arg-type]
    )


# --- answers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One row of a kind's answer table: what a provider's answer means for a recipient.

    ``error_code`` is ours (recorded on a failed recipient); ``opted_out``: the provider says
    the recipient opted out, so the gateway also adds a suppression."""

    outcome: Outcome
    error_code: str | None = None
    opted_out: bool = False


def apply_rule(
    rule: Rule,
    detail: str,
    *,
    carrier_message_id: str | None = None,
    retry_after: float | None = None,
) -> SubmitResult:
    """The :class:`SubmitResult` a table row gives; ``detail`` is the provider's status word."""
    if rule.outcome == "accepted":
        return SubmitResult(accepted=True, carrier_message_id=carrier_message_id, detail=detail)
    return SubmitResult(
        accepted=False,
        error_code=rule.error_code,
        retryable=rule.outcome == "retry",
        failover=rule.outcome == "failover",
        retry_after=retry_after if rule.outcome == "retry" else None,
        detail=detail,
        opted_out=rule.opted_out,
    )


K = TypeVar("K")
#: A kind's answer table: (key, provider code) -> rule; code ``*`` matches any code of the key.
AnswerTable = Mapping[tuple[K, str], Rule]
ANY = "*"


def lookup(table: AnswerTable[K], key: K, code: str) -> Rule | None:
    """The row for (key, code), else (key, ``*``), else None."""
    found = table.get((key, code))
    return found if found is not None else table.get((key, ANY))


#: HTTP statuses every provider means the same way; a kind's table is consulted first.
HTTP_RULES: dict[int, Rule] = {
    408: Rule("retry", "upstream_timeout"),
    429: Rule("retry", "throttled"),
    500: Rule("retry", "upstream_error"),
    502: Rule("retry", "upstream_error"),
    503: Rule("retry", "upstream_error"),
    504: Rule("retry", "upstream_error"),
}


def http_rule(status: int) -> Rule:
    """The generic meaning of an HTTP status no kind-specific row matched."""
    found = HTTP_RULES.get(status)
    if found is not None:
        return found
    if status >= 500:
        return Rule("retry", "upstream_error")
    return Rule("fail", "carrier_rejected")


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), within 0..MAX_RETRY_AFTER."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class UncertainSubmit(Exception):
    """The request may have reached the provider and its answer is lost (raised from a
    submit, so the gateway's crash policy decides). Carries the failure's type name only."""


#: Failures before the request could leave: nothing was sent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def transport_result(exc: httpx.HTTPError, *, idempotent: bool) -> SubmitResult:
    """What a transport failure means; raises :class:`UncertainSubmit` when the request may
    have been taken and a resend could send twice."""
    word = _transport_word(exc)
    if isinstance(exc, _NOT_SENT):
        return SubmitResult(accepted=False, retryable=True, error_code="upstream_down", detail=word)
    if idempotent:
        return SubmitResult(
            accepted=False, retryable=True, error_code="upstream_timeout", detail=word
        )
    raise UncertainSubmit(word) from None


def _transport_word(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError) and _caused_by_tls(exc):
        return "tls_error"
    names: dict[type[Exception], str] = {
        httpx.ConnectTimeout: "connect_timeout",
        httpx.ConnectError: "connect_error",
        httpx.PoolTimeout: "pool_timeout",
        httpx.ReadTimeout: "read_timeout",
        httpx.WriteTimeout: "write_timeout",
        httpx.RemoteProtocolError: "connection_lost",
        httpx.ReadError: "connection_lost",
        httpx.WriteError: "connection_lost",
    }
    return names.get(type(exc), type(exc).__name__)


def _caused_by_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):  # httpx wraps httpcore, which wraps the ssl error
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# --- health -------------------------------------------------------------------------------


class UpstreamHealth:
    """Failures in a row -> degraded; one success -> up. In memory, per worker process (the
    worker publishes it like an SMPP carrier's binds)."""

    def __init__(self, degraded_after: int) -> None:
        self.degraded_after = degraded_after
        self.failures = 0
        self.last: str | None = None
        self.in_flight = 0

    def record(self, failed: bool, word: str | None) -> None:
        """Count one request: a transport failure, 429 or 5xx is a failure."""
        if failed:
            self.failures += 1
            self.last = word
        else:
            self.failures = 0

    def health(self) -> CarrierHealth:
        if self.failures >= self.degraded_after:
            detail = f"{self.failures} failures in a row (last: {self.last or 'unknown'})"
            return CarrierHealth(state="degraded", window_in_use=self.in_flight, detail=detail)
        return CarrierHealth(state="up", window_in_use=self.in_flight)


# --- the base connector ---------------------------------------------------------------------


def group_key(request: SubmitRequest) -> tuple[str | None, str, str]:
    """Recipients that may share one request: same sender, text and mode."""
    return (request.sender, request.content, request.mode)


_Waiting = tuple[SubmitRequest, "asyncio.Future[SubmitResult]"]


class HttpUpstream(abc.ABC):
    """A :class:`ConnectedCarrier` over HTTP. Subclasses set ``idempotent`` (the provider
    dedupes a resend by our submit key) and implement :meth:`send` and :meth:`make_client`."""

    #: The provider recognises a repeated submit (an idempotency key): a resend after a lost
    #: answer sends nothing twice, so no submit mark is needed (read by the worker).
    idempotent: bool = False
    #: Recipients per request the provider allows at most (1: no batching).
    max_batch: int = 1

    def __init__(
        self, name: str, options: UpstreamOptions, *, throttle: Throttle | None = None
    ) -> None:
        self.name = name
        self.options = options
        self._throttle = throttle
        self._client: httpx.AsyncClient | None = None
        self._events: CarrierEvents | None = None
        self._health = UpstreamHealth(options.degraded_after)
        self._pending: list[_Waiting] = []
        self._flushing: set[asyncio.Task[None]] = set()  # held: the loop keeps weak references

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @property
    def batch_size(self) -> int:
        return max(1, min(self.options.batch_size, self.max_batch))

    @abc.abstractmethod
    def make_client(self) -> httpx.AsyncClient:
        """The carrier's client, from :func:`build_client` with the provider's auth."""

    @abc.abstractmethod
    async def send(
        self, client: httpx.AsyncClient, requests: Sequence[SubmitRequest]
    ) -> Sequence[SubmitResult]:
        """Submit recipients sharing sender and text (at most ``batch_size``) in one request;
        one result per request, in order. Raise ``httpx.HTTPError`` on a transport failure
        (classified here); map every answer through the kind's table."""

    async def start(self, events: CarrierEvents) -> None:
        self._events = events
        self._client = self.make_client()

    async def stop(self) -> None:
        for task in list(self._flushing):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._throttle is not None:
            await self._throttle.aclose()

    def health(self) -> CarrierHealth:
        return self._health.health()

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        if self.batch_size == 1:
            results = await self._send_group([request])
            return results[0]
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[SubmitResult] = loop.create_future()
        self._pending.append((request, answer))
        if len(self._pending) == 1:
            # Runs after every submit of this turn of the loop has queued.
            task = loop.create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        return await answer

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        groups: dict[tuple[str | None, str, str], list[_Waiting]] = {}
        for item in batch:
            groups.setdefault(group_key(item[0]), []).append(item)
        chunks = [
            members[start : start + self.batch_size]
            for members in groups.values()
            for start in range(0, len(members), self.batch_size)
        ]
        await asyncio.gather(*(self._answer(chunk) for chunk in chunks))

    async def _answer(self, chunk: list[_Waiting]) -> None:
        try:
            results: Sequence[SubmitResult | BaseException] = await self._send_group(
                [request for request, _ in chunk]
            )
        except Exception as exc:  # uncertain: every member raises it
            results = [exc] * len(chunk)
        for (_, waiter), result in zip(chunk, results, strict=True):
            if waiter.done():
                continue
            if isinstance(result, BaseException):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)

    async def _send_group(self, requests: list[SubmitRequest]) -> Sequence[SubmitResult]:
        client = self._client
        if client is None:
            down = SubmitResult(accepted=False, failover=True, detail="not started")
            return [down] * len(requests)
        if self._throttle is not None:
            try:
                await self._throttle.acquire(len(requests))
            except Exception as exc:  # Redis or the database did not answer: nothing was sent
                log.warning("upstream_throttle_failed", carrier=self.name, error=type(exc).__name__)
                busy = SubmitResult(accepted=False, retryable=True, detail="throttle unavailable")
                return [busy] * len(requests)
        self._health.in_flight += len(requests)
        try:
            results = await self.send(client, requests)
        except httpx.HTTPError as exc:
            self._health.record(True, _transport_word(exc))
            log.warning("upstream_transport_failed", carrier=self.name, error=_transport_word(exc))
            failed = transport_result(exc, idempotent=self.idempotent)
            return [failed] * len(requests)
        finally:
            self._health.in_flight -= len(requests)
        if len(results) != len(requests):
            raise UncertainSubmit("answer_mismatch")
        all_failed = all(r.retryable for r in results)
        self._health.record(all_failed, results[0].detail if results else None)
        return results
