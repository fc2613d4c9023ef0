"""ASGI middleware: request ids, the body size cap, metrics, the access log, and direct routes.

Metrics and the access log name a request by its route *template* (``/api/v1/consents/{phone}``),
never by its path: a path can hold a phone number in any spelling (``00256...``, spaces,
brackets) that no redaction pattern reliably catches, and raw paths would also let any caller
create unbounded metric series.

Plain ASGI rather than BaseHTTPMiddleware: it adds no task or copy per request, which matters on
the send path.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from msgine.server._ids import new_id
from msgine.server.errors import PayloadTooLarge
from msgine.server.metrics import child

MAX_BODY_BYTES = 64 * 1024
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

REQUESTS = Counter("msgine_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "msgine_http_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


ACCESS_LOGGER = "msgine.access"
_access_log = logging.getLogger(ACCESS_LOGGER)
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class PayloadTooLargeError(Exception):
    pass


def route_template(scope: Scope) -> str:
    """The matched route's template, or ``"unmatched"``: never the request's own path."""
    return str(getattr(scope.get("route"), "path", UNMATCHED))


def method_label(scope: Scope) -> str:
    """The method for metrics and logs; a client's invented method cannot add label values."""
    method = str(scope.get("method", ""))
    return method if method in _METHODS else "OTHER"


def _error_body(request_id: str, code: str, message: str) -> bytes:
    body = {
        "error": {"code": code, "message": message, "details": {}},
        "meta": {"requestId": request_id},
    }
    return json.dumps(body, separators=(",", ":")).encode()


class RequestContextMiddleware:
    """Gives every request an id (a safe incoming X-Request-Id is kept), caps bodies at 64 KiB,
    echoes the id on every response and records route-level metrics (no personal data)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        # Every log line of this request (the access log included) carries its id.
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        declared = self._content_length(scope)
        if declared is not None and declared > MAX_BODY_BYTES:
            await self._reject(send_with_id, request_id)
            return
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise PayloadTooLargeError
            return message

        try:
            await self.app(scope, capped_receive, send_with_id)
        except PayloadTooLargeError:
            await self._reject(send_with_id, request_id)
        finally:
            route = route_template(scope)
            method = method_label(scope)
            status = status_holder["status"]
            elapsed = time.perf_counter() - started
            child(REQUESTS, method, route, str(status)).inc()
            child(LATENCY, route).observe(elapsed)
            if _access_log.isEnabledFor(logging.INFO):
                _access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 1),
                        "client": _client(scope),
                    },
                )

    @staticmethod
    def _request_id(scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _SAFE_REQUEST_ID.fullmatch(candidate):
                    return str(candidate)
        return new_id("req")

    @staticmethod
    def _content_length(scope: Scope) -> int | None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    @staticmethod
    async def _reject(send: Any, request_id: str) -> None:
        body = _error_body(
            request_id, PayloadTooLarge.code, f"Request body exceeds {MAX_BODY_BYTES} bytes."
        )
        await send(
            {
                "type": "http.response.start",
                "status": PayloadTooLarge.status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _client(scope: Scope) -> str | None:
    """The caller's address as authentication saw it (behind trusted proxies), else the peer."""
    resolved = scope.get("msgine.client_ip")
    if resolved:
        return str(resolved)
    client = scope.get("client")
    return str(client[0]) if client else None


ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]


class DirectRoutes:
    """Runs a few hot plain routes (the send path) straight from here, by exact method and
    path, with the app's own exception handlers; every other request goes on to the app.

    Why: the framework's layers below this point (exception middleware, exit stack, router,
    route matching over every route, two handler wrappers) cost about a tenth of a send's CPU
    and do nothing a plain endpoint needs. What a request gets from the layers above (request
    id, body cap, metrics, rate-limit headers) stays the same. ``handlers`` is read at each
    request, so the app may register its handlers after adding the middleware. ``refuse``
    names the error for paths answered without routing at all (another channel's paths, which
    templated routes further down would otherwise catch).
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[tuple[str, str], Route],
        handlers: Mapping[Any, ExceptionHandler],
        refuse: Callable[[str], Exception | None] = lambda _path: None,
    ) -> None:
        self.app = app
        self.routes = routes
        self.handlers = handlers
        self.refuse = refuse
        self.paths = {path for _method, path in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == "http":
            route = self.routes.get((scope["method"], scope["path"]))
        if route is None:
            if scope["type"] == "http" and scope["path"] in self.paths:
                # These paths are this middleware's alone: another method is 405 here, not a
                # lookup of an object named "sms" by a templated route further down.
                await self._answer(scope, receive, send, None, StarletteHTTPException(405))
                return
            refusal = self.refuse(scope["path"]) if scope["type"] == "http" else None
            if refusal is not None:
                await self._answer(scope, receive, send, None, refusal)
                return
            await self.app(scope, receive, send)
            return
        await self._answer(scope, receive, send, route, None)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route | None,
        refusal: Exception | None,
    ) -> None:
        if route is not None:
            scope["route"] = route
        request = Request(scope, receive, send)
        try:
            if refusal is not None:
                raise refusal
            assert route is not None
            response: Response = await route.endpoint(request)
        except PayloadTooLargeError:
            raise  # answered 413 by RequestContextMiddleware
        except Exception as exc:
            answer = self._handler(exc)(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> ExceptionHandler:
        for kind in type(exc).__mro__:
            handler = self.handlers.get(kind)
            if handler is not None:
                return handler
        raise exc  # no handler at all: the server's error middleware answers
