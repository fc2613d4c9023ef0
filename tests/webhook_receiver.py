"""A scriptable HTTP(S) server on 127.0.0.1 (threads), with certificates from trustme: the
webhook tests' receiver, and the carrier tests' stand-in for a provider's API."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from collections.abc import Callable
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
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: Receiver, context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.receiver = receiver
        self.context = context
        receiver.port = self.server_address[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
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


def start_receiver(
    ca: trustme.CA | None, receiver: Receiver | None = None
) -> tuple[Receiver, _TLSServer]:
    """Serve ``receiver`` over HTTPS with a certificate from ``ca`` (plain HTTP when None)."""
    context = None
    if ca is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    receiver = receiver or Receiver()
    receiver.scheme = "https" if ca else "http"
    server = _TLSServer(receiver, context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server
