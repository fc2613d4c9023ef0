"""The HTTP/1.1 connection protocol ``msgine serve`` runs: uvicorn's httptools protocol with the
limits a server facing untrusted clients needs and that neither uvicorn nor httptools has.

Why our own subclass: httptools accumulates a header of any size (a 50 MB ``X-Api-Key`` was
read whole before the 401), and uvicorn arms no timer before a request's head is complete or
while its body trickles in, so a client sending a byte every few seconds holds a connection
and its buffers for ever. uvicorn's ``h11_max_incomplete_event_size`` only applies to the h11
protocol, and ``limit_concurrency`` answers 503 only once a request's head has arrived.

What this adds, each from :class:`ConnectionLimits` (settings ``MSGINE_MAX_HEADER_BYTES``,
``MSGINE_MAX_HEADERS``, ``MSGINE_HEADER_TIMEOUT``, ``MSGINE_BODY_TIMEOUT``,
``MSGINE_MAX_CONNECTIONS``; see docs/server-limits.md):

* a request head (request line and headers) larger than ``max_header_bytes``, or with more than
  ``max_headers`` fields: 431 and the connection closed, before more of it is buffered;
* a head not complete ``header_timeout`` seconds after the connection opened or the request
  began: 408 and closed; a body not complete ``body_timeout`` seconds after its head: 408 (or
  just closed if the answer has started);
* more than ``max_connections`` open connections: a new one is answered 503 and closed at once.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from msgine.server._ids import new_id
from msgine.server.config import Settings

_REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000


def refusal(status: int, code: str, message: str) -> bytes:
    """A complete HTTP response in the contract's error format, closing the connection."""
    request_id = new_id("req")
    body = json.dumps(
        {
            "error": {"code": code, "message": message, "details": {}},
            "meta": {"requestId": request_id},
        },
        separators=(",", ":"),
    ).encode()
    head = [
        b"HTTP/1.1 %d %s" % (status, _REASONS[status]),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"x-request-id: " + request_id.encode(),
        b"connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """See the module docstring; ``limits`` is set on the subclass :func:`guarded_protocol`
    makes."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._heads_done = 0
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None

    # --- connection -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "service_unavailable", "Too many open connections; retry shortly.")
            return
        self._arm(self.limits.header_timeout, "The request head was not received in time.")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        budget = self.limits.max_header_bytes - self._head_bytes
        if not self._reading_head or len(data) <= budget:
            if self._reading_head:
                self._head_bytes += len(data)
            super().data_received(data)
            return
        # The head must end within the budget; what follows it (a body) is not head.
        heads_before = self._heads_done
        self._head_bytes += budget
        super().data_received(data[:budget])
        if self._refused or self.transport.is_closing():
            return
        if self._heads_done == heads_before:
            self._too_large()
            return
        self.data_received(data[budget:])

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a refusal already answered and closed the connection
            self._disarm()
            super().send_400_response(msg)

    # --- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._header_count = 0
        self._arm(self.limits.header_timeout, "The request head was not received in time.")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._too_large()
            raise ValueError("too many header fields")  # stops the parser; answered above
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._heads_done += 1
        self._reading_head = False
        self._head_bytes = 0
        self._disarm()
        super().on_headers_complete()
        if self.parser is not None and _has_body(self.headers):
            self._arm(self.limits.body_timeout, "The request body was not received in time.")

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_head = True
        self._head_bytes = 0
        super().on_message_complete()

    # --- refusals ---------------------------------------------------------------------------

    def _too_large(self) -> None:
        self._refuse(431, "headers_too_large", "Request header fields too large.")

    def _arm(self, seconds: float, message: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._timed_out, message)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self, message: str) -> None:
        self._deadline = None
        cycle = self.cycle
        if cycle is not None and not self._reading_head and cycle.response_started:
            self._refused = True
            self.transport.close()  # mid-answer: nothing well-formed can be sent any more
            return
        self._refuse(408, "request_timeout", message)

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._disarm()
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self.logger.warning("Connection refused: %s (%d)", code, status)
        self.transport.write(refusal(status, code, message))
        self.transport.close()


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
    return False


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=`` with these limits."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


def connection_protocol(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for the configured limits (``msgine serve`` passes it to uvicorn)."""
    return guarded_protocol(
        ConnectionLimits(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_connections=settings.max_connections,
        )
    )
