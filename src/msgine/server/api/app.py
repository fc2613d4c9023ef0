"""The FastAPI application: middleware, the contract's error format, and the routers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Route, compile_path

from msgine.server import console
from msgine.server.api import _docs, _limits, _openapi
from msgine.server.api._errors import error_response
from msgine.server.api._middleware import (
    DirectRoutes,
    PayloadTooLargeError,
    RequestContextMiddleware,
)
from msgine.server.api.routes import (
    API_PREFIX,
    account,
    analytics,
    audit,
    carriers,
    channels,
    compliance,
    keys,
    messages,
    meta,
    simulator,
    webhooks,
)
from msgine.server.audit import publish_heads
from msgine.server.errors import DomainError, InvalidPhoneNumber, RateLimitExceeded
from msgine.server.logging import get_logger
from msgine.server.runtime import Runtime

log = get_logger("msgine.api")

BackgroundTask = Callable[[Runtime, asyncio.Event], Coroutine[Any, Any, None]]

_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
# PostgreSQL refusing writes: a read-only transaction (a standby, or a database set read-only,
# 25006) or insufficient resources (disk full, out of memory: class 53).
_REFUSED_WRITE_STATES = ("25006", "53")


def _unavailable(exc: Exception) -> bool:
    """The database cannot serve now (down, overloaded, full, read-only): nothing was stored."""
    if isinstance(exc, _UNAVAILABLE):
        return True
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, sa_exc.DBAPIError) and str(state).startswith(_REFUSED_WRITE_STATES)


_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def create_app(runtime: Runtime, *, background: list[BackgroundTask] | None = None) -> FastAPI:
    """Build the app around an opened runtime; ``background`` tasks run for the app's lifetime."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        # Every serving process publishes the audit chain's head (docs/audit-and-logging.md).
        scheduled = [*(background or []), publish_heads]
        tasks = [asyncio.create_task(task(runtime, stop)) for task in scheduled]
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                try:
                    await asyncio.wait_for(task, timeout=10)
                except (TimeoutError, asyncio.CancelledError):
                    task.cancel()
            for hook in app.state.shutdown_hooks:
                await hook()

    app = FastAPI(
        title="MsGine gateway",
        version="1.0",
        description="Self-hosted SMS gateway compatible with MsGine's messaging API.",
        lifespan=lifespan,
        docs_url=None,  # served from the package by _docs: FastAPI's pages load a CDN
        redoc_url=None,
        # The gateway reports through its own Prometheus metrics and logs; FastAPI's built-in
        # OpenTelemetry support would look up tracer and meter providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    app.state.auth_hooks = []
    app.state.pre_auth_hooks = []
    app.state.shutdown_hooks = []
    app.state.drain_steps = []
    app.state.send_prechecks = []
    app.state.inbound_handlers = []
    # The send paths run without the framework's routing layers (see DirectRoutes).
    direct = {
        ("POST", API_PREFIX + path): Route(path, messages.send, methods=["POST"])
        for path in messages.SEND_PATHS
    }
    app.add_middleware(
        DirectRoutes, routes=direct, handlers=app.exception_handlers, refuse=channels.refusal
    )
    app.add_middleware(RequestContextMiddleware)
    _install_error_handlers(app)
    # Other channels' paths first: the message routes' {message_id} would catch them.
    routers = (messages, analytics, keys, webhooks, compliance, audit, account, simulator, carriers)
    for module in routers:
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(meta.api_router, prefix=API_PREFIX)
    app.include_router(meta.router)
    for module in (messages, keys, webhooks, compliance, audit, account, simulator, carriers, meta):
        install = getattr(module, "install", None)
        if install is not None:
            install(app)
    _limits.install(app)
    console.install(app)  # after the limits: it shares their limiter
    _docs.install(app)
    _openapi.install(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        headers: dict[str, str] = {}
        extra: dict[str, Any] = {}
        if isinstance(exc, RateLimitExceeded):
            headers["Retry-After"] = str(exc.retry_after)
            headers.update(getattr(exc, "headers", {}) or {})
            extra["retryAfter"] = exc.retry_after
        return error_response(
            request, exc.status, exc.code, exc.message, exc.details, headers=headers, extra=extra
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
                "problem": err.get("msg", "invalid"),
            }
            for err in exc.errors()
        ]
        if _only_a_malformed_number(exc):
            # A number outside the documented form (pattern, length) is refused before it is
            # parsed, with the same code as one that does not parse.
            return error_response(
                request,
                400,
                InvalidPhoneNumber.code,
                "The number in 'phone' is not a valid international number (E.164, e.g. +256...).",
                {"field": "phone", "errors": problems},
            )
        message = "Malformed JSON body." if _is_json_error(exc) else "Invalid request."
        return error_response(request, 400, "invalid_request", message, {"errors": problems})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.__cause__, PayloadTooLargeError):
            return error_response(request, 413, "payload_too_large", "Request body too large.")
        code = _HTTP_CODES.get(
            exc.status_code, "invalid_request" if exc.status_code < 500 else "internal_error"
        )
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        headers = dict(exc.headers or {})
        if exc.status_code == 404:
            message = "Not found."
        if exc.status_code == 405:
            # Starlette names only the first route matching the path; a path served by several
            # routes (GET, PATCH and DELETE /webhooks/{id}) allows all their methods.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return error_response(request, exc.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        if _unavailable(exc):
            # The database is down, overloaded or refusing writes: nothing was stored, the
            # client may retry.
            log.error("database_unavailable", error_type=type(exc).__name__, route=route)
            return error_response(
                request,
                503,
                "service_unavailable",
                "The service is temporarily unavailable; retry shortly.",
                headers={"Retry-After": "1"},
            )
        log.error("unhandled_error", error_type=type(exc).__name__, route=route)
        return error_response(request, 500, "internal_error", "Internal error.")


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the routes serving the request's path (included routers' too). The most
    specific routes own a path, as in OpenAPI: ``/messages/sms`` is the send route's (POST),
    though ``/messages/{message_id}`` would match it too."""
    by_specificity: dict[int, set[str]] = {}
    for route in iter_route_contexts(request.app.router.routes):
        if route.path and compile_path(route.path)[0].match(request.url.path):
            by_specificity.setdefault(route.path.count("{"), set()).update(route.methods or ())
    return sorted(by_specificity[min(by_specificity)]) if by_specificity else []


_MALFORMED = frozenset({"string_pattern_mismatch", "string_too_short", "string_too_long"})


def _only_a_malformed_number(exc: RequestValidationError) -> bool:
    """Every problem is a ``phone`` string of the wrong form (not a missing or mistyped one)."""
    errors = exc.errors()
    return bool(errors) and all(
        err.get("type") in _MALFORMED and tuple(err.get("loc", ()))[-1:] == ("phone",)
        for err in errors
    )


def _is_json_error(exc: RequestValidationError) -> bool:
    return any(err.get("type") == "json_invalid" for err in exc.errors())
