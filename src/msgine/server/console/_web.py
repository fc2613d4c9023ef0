"""The console's web plumbing: who is signed in, roles, CSRF, cookies, headers, rendering.

Everything a page needs is here, and each rule is applied in one place:
- ``require(permission)`` is the only access check (the table is ``_roles.PERMISSIONS``);
- ``csrf_guard`` runs before every console route and refuses any state change whose token is
  missing or wrong, or that a browser says came from another site;
- ``SecurityHeaders`` puts the CSP and the other headers on every console response;
- ``render`` renders a template with Jinja2's autoescaping on.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from jinja2 import Environment, FileSystemLoader
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from msgine.server.audit import Actor
from msgine.server.runtime import Runtime

from . import _sessions
from ._roles import allowed

BASE = "/console"
STATIC = f"{BASE}/static"
HOME = f"{BASE}/"
SIGN_IN = f"{BASE}/signin"
_HERE = Path(__file__).parent
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

#: The navigation, in order: (label, path under /console, permission to see it).
NAV: list[tuple[str, str, str]] = [
    ("Overview", "/", "console:view"),
    ("Messages", "/messages", "console:view"),
    ("Keys", "/keys", "console:view"),
    ("Webhooks", "/webhooks", "console:view"),
    ("Compliance", "/compliance", "console:view"),
    ("Audit", "/audit", "audit:read"),
    ("Carriers", "/carriers", "console:view"),
]

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


# --- errors the console renders as pages ------------------------------------------------------


class SignInRequired(Exception):
    """No live session (or not at the step a page needs): the answer is the sign-in page."""


class Refused(Exception):
    """A 403: a role without the permission, or a state change without a valid CSRF token."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


# --- who is asking ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in user of a request, as pages see it."""

    id: str
    email: str
    role: str
    account_id: str
    session_id: str
    csrf_token: str = field(repr=False)

    def can(self, permission: str) -> bool:
        return allowed(self.role, permission)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def client_ip(request: Request) -> str | None:
    """The caller's address as the API resolves it (behind trusted proxies too)."""
    resolver: Callable[[Request], str | None] | None = request.app.state.client_ip_resolver
    if resolver is not None:
        return resolver(request)
    return request.client.host if request.client else None


def actor(request: Request, user_id: str | None) -> Actor:
    """The audit actor: ``user:<id>`` (``anonymous`` before sign-in), address and request id."""
    request_id = str(getattr(request.state, "request_id", "") or "") or None
    name = f"user:{user_id}" if user_id else "anonymous"
    return Actor(name=name, source_ip=client_ip(request), request_id=request_id)


def timeouts(runtime: Runtime) -> _sessions.Timeouts:
    settings = runtime.settings
    return _sessions.Timeouts(
        idle=timedelta(seconds=settings.console_idle_timeout),
        absolute=timedelta(seconds=settings.console_absolute_timeout),
    )


async def current_session(request: Request) -> _sessions.Session | None:
    """The request's live session (any stage), looked up once per request."""
    if "console_session" in request.scope:
        found: _sessions.Session | None = request.scope["console_session"]
        return found
    token = request.cookies.get(cookie_name(request, SESSION))
    session = None
    if token and len(token) <= 64:
        runtime = runtime_of(request)
        now = runtime.now()
        session = await runtime.db.aread(lambda conn: _sessions.find(conn, runtime.vault, token))
        if session is not None:
            verdict = _sessions.verdict(session, now, timeouts(runtime))
            if verdict == "end":
                ended = session.id
                await runtime.db.awrite(lambda conn: _sessions.end(conn, ended, now))
                session = None
            elif verdict == "touch":
                touched = session.id
                await runtime.db.awrite(lambda conn: _sessions.touch(conn, touched, now))
    request.scope["console_session"] = session
    return session


async def signed_in(request: Request) -> ConsoleUser:
    """The dependency of every page: a session that finished signing in, or the sign-in page."""
    session = await current_session(request)
    if session is None or session.stage != _sessions.FULL:
        raise SignInRequired()
    user = session.user
    return ConsoleUser(
        id=user["id"],
        email=user["email"],
        role=user["role"],
        account_id=user["account_id"],
        session_id=session.id,
        csrf_token=csrf_token(request),
    )


def require(permission: str) -> Callable[[Request], Awaitable[ConsoleUser]]:
    """A dependency: the signed-in user, holding ``permission`` (403 page otherwise)."""

    async def dependency(request: Request) -> ConsoleUser:
        user = await signed_in(request)
        if not user.can(permission):
            raise Refused("Your role does not allow this.", reason="role")
        return user

    return dependency


# --- cookies ----------------------------------------------------------------------------------

SESSION = "msgine_console"
PRE_SESSION = "msgine_console_pre"
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def served_over_tls(request: Request) -> bool:
    """TLS here, or at a trusted proxy that says so (MSGINE_TRUSTED_PROXIES)."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    proxies = runtime_of(request).settings.trusted_proxy_list
    if peer is None or not proxies or not _in_networks(peer, proxies):
        return False
    return request.headers.get("x-forwarded-proto", "").strip().lower() == "https"


def _in_networks(peer: str, networks: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
        return any(address in ipaddress.ip_network(n, strict=False) for n in networks)
    except ValueError:
        return False


def secure_cookies(request: Request) -> bool:
    """Cookies are ``Secure`` except on plain HTTP between loopback addresses (local use),
    where a browser would not send a ``Secure`` cookie back."""
    if served_over_tls(request):
        return True
    host = (request.url.hostname or "").lower()
    peer = request.client.host if request.client else None
    return not (host in _LOOPBACK_NAMES or host.endswith(".localhost")) or not _loopback(peer)


def cookie_name(request: Request, base: str) -> str:
    """``__Host-`` names where cookies are Secure: the browser then refuses the cookie from a
    subdomain or a path, so no other site on the domain can plant one."""
    return f"__Host-{base}" if secure_cookies(request) else base


def set_cookie(request: Request, response: Response, base: str, value: str) -> None:
    secure = secure_cookies(request)
    response.set_cookie(
        cookie_name(request, base),
        value,
        path="/" if secure else BASE,
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def clear_cookie(request: Request, response: Response, base: str) -> None:
    secure = secure_cookies(request)
    response.delete_cookie(
        cookie_name(request, base),
        path="/" if secure else BASE,
        secure=secure,
        httponly=True,
        samesite="strict",
    )


# --- CSRF -------------------------------------------------------------------------------------


def _binding(request: Request) -> str | None:
    """What the CSRF token is tied to: the session's token, or before sign-in the pre-session
    cookie (so the sign-in form is protected too)."""
    fresh: str | None = request.scope.get("console_binding")
    if fresh:
        return fresh
    return request.cookies.get(cookie_name(request, SESSION)) or request.cookies.get(
        cookie_name(request, PRE_SESSION)
    )


def bind_csrf(request: Request, value: str) -> None:
    """A new session or pre-session token set by this response: forms on it use it already."""
    request.scope["console_binding"] = value


def csrf_token(request: Request) -> str:
    """The token a form must send back, or "" when nothing binds one yet."""
    binding = _binding(request)
    if not binding:
        return ""
    return runtime_of(request).vault.key_hash(f"console-csrf\x00{binding}")


def new_pre_session() -> str:
    return secrets.token_urlsafe(32)


async def csrf_guard(request: Request) -> None:
    """Runs before every console route: a state change must carry the token of its session
    (form field ``csrf_token`` or header ``X-CSRF-Token``) and must not come from another
    site by the browser's own account (``Sec-Fetch-Site``, ``Origin``)."""
    if request.method in SAFE_METHODS:
        return
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Refused("This form came from another site.", reason="cross_site")
    origin = request.headers.get("origin")
    if origin is not None and origin != _own_origin(request):
        raise Refused("This form came from another site.", reason="origin")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and _is_form(request):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected = csrf_token(request)
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Refused(
            "This form has expired or did not come from this console. Reload the page and try "
            "again.",
            reason="csrf",
        )


def _is_form(request: Request) -> bool:
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return media in ("application/x-www-form-urlencoded", "multipart/form-data")


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


# --- headers ----------------------------------------------------------------------------------


class SecurityHeaders:
    """The console's headers on every response it gives (pages, redirects, errors, files)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        tls = served_over_tls(request)
        static = str(scope.get("path", "")).startswith(STATIC)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] not in _NAMES]
                headers.extend(_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                if tls:
                    headers.append(_HSTS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


_NAMES = frozenset(name for name, _ in _HEADERS) | {b"cache-control"}


# --- rendering --------------------------------------------------------------------------------

templates = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=True,  # every value is escaped unless a view marks it safe (Markup)
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A page: ``template`` with the signed-in user, CSRF token and navigation available."""
    session: _sessions.Session | None = request.scope.get("console_session")
    user = None
    if session is not None and session.stage == _sessions.FULL:
        user = session.user
    values = {
        "request": request,
        "user": user,
        "can": (lambda permission: allowed(user["role"], permission)) if user else _nobody,
        "csrf_token": csrf_token(request),
        "nav": NAV,
        "base": BASE,
        "static": STATIC,
        "path": request.url.path,
        **context,
    }
    return HTMLResponse(templates.get_template(template).render(values), status_code=status)


def _nobody(permission: str) -> bool:
    return False
