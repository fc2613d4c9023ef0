"""What the provider test servers share: a Starlette app under uvicorn on 127.0.0.1 (in a
thread, HTTP or HTTPS with a trustme CA), a log of every request received, injected faults, and
callbacks posted back to the gateway as the provider posts them.

Each provider's server (``africastalking_server``, ``twilio_server``) is written from that
provider's public API documentation, and its own tests drive it with the provider's official
Python package: if the official client cannot talk to it, the server is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import trustme
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass(frozen=True)
class Fault:
    """An injected answer to the next API request(s), instead of the documented one.

    ``status`` 0 with a ``delay`` only holds the documented answer back (a slow provider)."""

    status: int = 503
    retry_after: str | None = None
    times: int = 1
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request the provider received: headers lowercased, form fields in order."""

    method: str
    path: str
    headers: dict[str, str]
    form: list[tuple[str, str]]
    client: str

    def field(self, name: str) -> str | None:
        return next((value for key, value in self.form if key == name), None)


@dataclass(frozen=True)
class Callback:
    """A request the provider makes to the gateway (receipt or inbound message)."""

    url: str
    form: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, *, verify: Any = True, timeout: float = 10.0) -> httpx.Response:
        """POST it for real, as the provider does (form-encoded)."""
        return httpx.post(
            self.url,
            data=self.form,
            headers=self.headers,
            verify=verify,
            timeout=timeout,
            follow_redirects=False,
        )


class ProviderServer:
    """Base of a provider's API server. Subclasses give ``routes()`` and ``error(status)``."""

    def __init__(self, *, tls: bool = False) -> None:
        self.requests: list[Recorded] = []
        #: Callbacks built while ``auto_callbacks`` is off, for a test to deliver itself.
        self.pending: list[Callback] = []
        #: Callbacks sent for real (with ``auto_callbacks``), with the status they got.
        self.sent: list[tuple[Callback, int]] = []
        self.auto_callbacks = False
        #: What the server trusts when it posts callbacks over HTTPS (a CA's PEM path or an
        #: ``ssl.SSLContext``; True: the system's store).
        self.callback_verify: Any = True
        self.lock = threading.Lock()
        self._faults: list[Fault] = []
        self.ca = trustme.CA() if tls else None
        self._tmp = tempfile.TemporaryDirectory(prefix="provider-")
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- what a subclass provides ---------------------------------------------------------

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def error(self, fault: Fault) -> Response:
        """The provider's own error answer for an injected HTTP status."""
        raise NotImplementedError

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.ca else "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def ca_path(self) -> Path:
        """The PEM file of the CA that signed the server's certificate (for a client)."""
        assert self.ca is not None, "started without tls"
        path = Path(self._tmp.name) / "ca.pem"
        if not path.exists():
            self.ca.cert_pem.write_to_path(str(path))
        return path

    def start(self) -> ProviderServer:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        options: dict[str, Any] = {}
        if self.ca is not None:
            pem = Path(self._tmp.name) / "server.pem"
            cert = self.ca.issue_cert("127.0.0.1", "localhost")
            cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
            options = {"ssl_certfile": str(pem), "ssl_keyfile": str(pem)}
        app = Starlette(routes=self.routes())
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, **options
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise AssertionError("provider test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._tmp.cleanup()

    # --- requests and faults --------------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        """Answer the next API requests with these faults, in order (each ``times`` times)."""
        with self.lock:
            self._faults.extend(faults)

    def _next_fault(self) -> Fault | None:
        with self.lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.times <= 1:
                self._faults.pop(0)
            else:
                self._faults[0] = dataclasses.replace(fault, times=fault.times - 1)
            return fault

    async def receive(self, request: Request) -> tuple[Recorded, Response | None]:
        """Record a request; an injected fault's answer, if one is due."""
        body = (await request.body()).decode("utf-8", errors="replace")
        recorded = Recorded(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            form=parse_qsl(body, keep_blank_values=True),
            client=request.client.host if request.client else "",
        )
        with self.lock:
            self.requests.append(recorded)
        fault = self._next_fault()
        if fault is None:
            return recorded, None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status == 0:
            return recorded, None
        return recorded, self.error(fault)

    def api_requests(self, path_part: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if path_part in r.path]

    def wait_requests(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        return self._wait(self.requests, count, timeout)

    # --- callbacks ------------------------------------------------------------------------

    def emit(self, *callbacks: Callback) -> None:
        """Deliver callbacks now, in order (auto mode: on a thread, so the API answer is not
        held up), or keep them for the test."""
        if not self.auto_callbacks:
            with self.lock:
                self.pending.extend(callbacks)
            return
        threading.Thread(target=self._post, args=callbacks, daemon=True).start()

    def _post(self, *callbacks: Callback) -> None:
        time.sleep(0.05)  # after the API answer has reached the client
        for callback in callbacks:
            try:
                status = callback.send(verify=self.callback_verify).status_code
            except httpx.HTTPError:
                status = 0
            with self.lock:
                self.sent.append((callback, status))

    def take(self, predicate: Callable[[Callback], bool] = lambda _: True) -> list[Callback]:
        """The pending callbacks matching ``predicate``, removed from the queue."""
        with self.lock:
            taken = [c for c in self.pending if predicate(c)]
            self.pending = [c for c in self.pending if not predicate(c)]
        return taken

    def wait_sent(self, count: int, timeout: float = 10.0) -> list[tuple[Callback, int]]:
        return self._wait(self.sent, count, timeout)

    def _wait(self, items: list[Any], count: int, timeout: float) -> list[Any]:
        """A copy of ``items`` once it holds ``count`` (filled by the server's threads)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(items) >= count:
                    return list(items)
            time.sleep(0.02)
        raise AssertionError(f"expected {count}, got {len(items)}")


@contextlib.contextmanager
def running(server: ProviderServer) -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Sink(ProviderServer):
    """A receiver of callbacks for the servers' own tests: records every POST, answers 200
    (or ``reply_status``)."""

    def __init__(self, *, tls: bool = False) -> None:
        super().__init__(tls=tls)
        self.reply_status = 200

    def routes(self) -> list[Route]:
        return [Route("/{path:path}", self._any, methods=["POST"])]

    def error(self, fault: Fault) -> Response:
        return Response(status_code=fault.status)

    def url(self, path: str = "/hook") -> str:
        return self.base_url + path

    async def _any(self, request: Request) -> Response:
        _recorded, faulted = await self.receive(request)
        return faulted or Response(status_code=self.reply_status)
