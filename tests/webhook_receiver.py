"""A scriptable HTTP(S) server on 127.0.0.1 (threads), with certificates from trustme: the
webhook tests' receiver, and the carrier tests' stand-in for a provider's API."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme


@dataclass(frozen=True)
class Reply:
    """What the receiver answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"received":true}'
    delay: float = 0.0
    # When set, the reply has no length and this chunk is written again and again until the
    # client goes away or the receiver closes (a response that never ends).
    endless: bytes = b""


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"
    query: str = ""

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """Records every request; answers from a per-path script, then ``default`` (200)."""

    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)
    default: Callable[[Hit], Reply] | None = None
    scheme: str = "https"
    connections: int = 0  # TCP connections accepted, whether or not a request followed

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.scripts[path] = list(replies)

    def reply_for(self, path: str, hit: Hit | None = None) -> Reply:
        with self.lock:
            queue = self.scripts.get(path)
            if path == "/redirect":
                return Reply(302, {"Location": self.url("/target")}, b"")
            if queue:
                return queue.pop(0)
        return self.default(hit) if self.default and hit else Reply()

    def hits_for(self, path: str = "/hook") -> list[Hit]:
        with self.lock:
            return [hit for hit in self.hits if hit.path == path]

    def wait_for(self, count: int, path: str = "/hook", timeout: float = 30) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.hits_for(path)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"expected {count} requests to {path}, got {len(self.hits_for(path))}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TLSServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        hit = Hit(path, headers, body, self.command, query)
        with receiver.lock:
            receiver.hits.append(hit)
        reply = receiver.reply_for(path, hit)
        if reply.delay:
            receiver.closing.wait(reply.delay)
        if reply.endless:
            self._write_endless(reply)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def _write_endless(self, reply: Reply) -> None:
        self.close_connection = True
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        with contextlib.suppress(OSError):
            while not self.server.receiver.closing.is_set():
                self.wfile.write(reply.endless)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: Receiver, context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.receiver = receiver
        self.context = context
        receiver.port = self.server_address[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self.receiver.lock:
            self.receiver.connections += 1
        if self.context is None:  # plain HTTP
            with contextlib.suppress(OSError):
                _Handler(request, client_address, self)
            return
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            _Handler(tls, client_address, self)
        except OSError:
            pass
        finally:
            tls.close()


LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def start_receiver(
    ca: trustme.CA | None,
    receiver: Receiver | None = None,
    *,
    names: Sequence[str] = LOOPBACK_NAMES,
) -> tuple[Receiver, _TLSServer]:
    """Serve ``receiver`` over HTTPS with a certificate from ``ca`` for ``names`` (plain HTTP
    when ``ca`` is None)."""
    context = None
    if ca is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(context)
    receiver = receiver or Receiver()
    receiver.scheme = "https" if ca else "http"
    server = _TLSServer(receiver, context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server


@contextlib.contextmanager
def serving(
    ca: trustme.CA | None,
    receiver: Receiver | None = None,
    *,
    names: Sequence[str] = LOOPBACK_NAMES,
) -> Iterator[Receiver]:
    """:func:`start_receiver` for a ``with`` block: on exit, delayed and endless replies end and
    the server stops."""
    receiver, server = start_receiver(ca, receiver, names=names)
    try:
        yield receiver
    finally:
        receiver.closing.set()
        server.shutdown()
        server.server_close()
