"""The console as its own ASGI app, mounted by the gateway at ``/console``.

Its own app so its rules stay its own: HTML error pages instead of the API's JSON, the CSRF
guard as a dependency of every route, the security headers on every response, no OpenAPI
operations. It shares the gateway's runtime, rate limiter and client-address resolver.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from msgine.server.errors import DomainError
from msgine.server.logging import get_logger, security_event

from . import (
    _audit,
    _carriers,
    _compliance,
    _home,
    _keys,
    _messages,
    _reveal,
    _signin,
    _webhooks,
)
from ._web import BASE, SIGN_IN, Refused, SecurityHeaders, SignInRequired, csrf_guard, render

_STATIC = Path(__file__).parent / "static"
log = get_logger("msgine.console")
_TITLES = {404: "Not found", 405: "Not allowed", 413: "Too large"}

#: The route modules; a page module adds itself here.
ROUTES = [
    _home,
    _signin,
    _reveal,
    _keys,
    _messages,
    _webhooks,
    _compliance,
    _audit,
    _carriers,
]


def install(app: FastAPI) -> FastAPI:
    """Mount the console on ``app`` (after the rate limits are installed); returns it."""
    console = FastAPI(
        docs_url=None, redoc_url=None, openapi_url=None, dependencies=[Depends(csrf_guard)]
    )
    console.state.gateway = app.state  # what the API keeps there (e.g. the usage recorder)
    console.state.runtime = app.state.runtime
    console.state.rate_limiter = app.state.rate_limiter
    console.state.client_ip_resolver = getattr(app.state, "client_ip_resolver", None)
    console.add_middleware(SecurityHeaders)
    console.mount("/static", StaticFiles(directory=_STATIC), name="console-static")
    for module in ROUTES:
        console.include_router(module.router)
    _error_pages(console)
    app.mount(BASE, console)
    app.state.console = console
    return console


def _error_pages(console: FastAPI) -> None:
    @console.exception_handler(SignInRequired)
    async def sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(SIGN_IN, status_code=303)

    @console.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        security_event("console_refused", reason=exc.reason, route=request.url.path)
        return render(request, "error.html", status=403, title="Refused", message=exc.message)

    @console.exception_handler(DomainError)
    async def domain(request: Request, exc: DomainError) -> Response:
        return render(
            request, "error.html", status=exc.status, title="Not done", message=exc.message
        )

    @console.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = sorted({str(e.get("loc", ("", ""))[-1]) for e in exc.errors()})
        return render(
            request,
            "error.html",
            status=400,
            title="Not done",
            message=f"Check the form: {', '.join(fields)}.",
        )

    @console.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        log.error("unhandled_error", error_type=type(exc).__name__, route=route)
        return render(
            request,
            "error.html",
            status=500,
            title="Something went wrong",
            message="The console could not do this. Try again; if it persists, tell the operator.",
        )

    @console.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException) -> Response:
        title = _TITLES.get(exc.status_code, "Not done")
        return render(
            request,
            "error.html",
            status=exc.status_code,
            title=title,
            message="There is no such page." if exc.status_code == 404 else title,
        )
