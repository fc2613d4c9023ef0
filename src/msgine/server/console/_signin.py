"""Sign-in, two-factor enrolment, password change, sign-out and the session list.

Steps: password -> (first time) TOTP enrolment with recovery codes shown once, or a TOTP or
recovery code -> (one-time password) a password of the user's own -> signed in. Each step is
a stage of one server-side session, whose token is replaced when the last step is done.

Failures count towards two lock-outs, both from the rate-limit module: the caller's address
(shared with API key failures, ``MSGINE_AUTH_FAILURE_LIMIT``) and the user being tried
(``MSGINE_CONSOLE_SIGNIN_FAILURES``), so neither many guesses from one place nor a few guesses
from many places get far. Every attempt is in the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from msgine.server.audit import record
from msgine.server.logging import security_event
from msgine.server.ratelimit import RateLimiter

from . import _credentials as cred
from . import _sessions, _users
from ._web import (
    BASE,
    HOME,
    PRE_SESSION,
    SESSION,
    SIGN_IN,
    ConsoleUser,
    SignInRequired,
    actor,
    bind_csrf,
    clear_cookie,
    client_ip,
    cookie_name,
    current_session,
    new_pre_session,
    render,
    require,
    runtime_of,
    set_cookie,
    timeouts,
)

router = APIRouter()
ENROL, CODE, NEW_PASSWORD = "enrol", "code", "password"
_STAGE_PAGES = {
    ENROL: f"{SIGN_IN}/enrol",
    CODE: f"{SIGN_IN}/code",
    NEW_PASSWORD: f"{SIGN_IN}/password",
}
_USER_NAMESPACE = "console-user"
_FAILED = "The e-mail address or password is not right."
_LOCKED = "Too many failed attempts. Try again in {minutes} minutes."

Text = Annotated[str, Form(max_length=1024)]


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# --- lock-outs --------------------------------------------------------------------------------


def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


def _identity(request: Request, email: str) -> str:
    """The per-user lock-out's key: a keyed hash, so no address reaches Redis."""
    digest = runtime_of(request).vault.key_hash(f"console-signin\x00{email.strip().lower()}")
    return f"u_{digest[:32]}"


async def _locked_for(request: Request, email: str) -> int:
    """Seconds before the address or the user may try again (0: now)."""
    limiter = _limiter(request)
    address = await limiter.is_locked_out(client_ip(request) or "unknown")
    if address:
        return address
    settings = runtime_of(request).settings
    decision = await limiter.test(
        _USER_NAMESPACE, _identity(request, email), settings.console_signin_failures
    )
    return 0 if decision.allowed else decision.retry_after


async def _count_failure(request: Request, email: str) -> None:
    limiter = _limiter(request)
    await limiter.record_auth_failure(client_ip(request) or "unknown")
    settings = runtime_of(request).settings
    await limiter.hit(_USER_NAMESPACE, _identity(request, email), settings.console_signin_failures)


async def _audit_attempt(
    request: Request, user: dict[str, Any] | None, outcome: str, reason: str | None = None
) -> None:
    runtime = runtime_of(request)
    now = runtime.now()
    who = actor(request, user["id"] if user else None)
    details = {"reason": reason} if reason else {}
    await runtime.db.awrite(
        lambda conn: record(
            conn,
            runtime.vault,
            who,
            "console.signin",
            now=now,
            outcome=outcome,
            target=user["id"] if user else None,
            account_id=user["account_id"] if user else None,
            details=details,
        )
    )
    if outcome != "success":
        security_event(
            "console_signin_failed",
            reason=reason,
            source_ip=who.source_ip,
            user=user["id"] if user else None,
        )


async def _refuse(
    request: Request,
    email: str,
    user: dict[str, Any] | None,
    reason: str,
    template: str,
    message: str,
) -> Response:
    await _count_failure(request, email)
    await _audit_attempt(request, user, "failure", reason)
    return render(
        request, template, status=400 if reason != "locked" else 429, error=message, email=email
    )


# --- step 1: password -------------------------------------------------------------------------


@router.get("/signin")
async def signin_page(request: Request) -> Response:
    session = await current_session(request)
    if session is not None and session.stage == _sessions.FULL:
        return redirect(HOME)
    if session is not None:  # a sign-in left half-way: start again
        runtime = runtime_of(request)
        now = runtime.now()
        await runtime.db.awrite(lambda conn: _sessions.end(conn, session.id, now))
    pre = new_pre_session()
    bind_csrf(request, pre)
    response = render(request, "signin.html")
    if cookie_name(request, SESSION) in request.cookies:  # the form is bound to the pre-session
        clear_cookie(request, response, SESSION)
    set_cookie(request, response, PRE_SESSION, pre)
    return response


@router.post("/signin")
async def signin(request: Request, email: Text, password: Text) -> Response:
    runtime = runtime_of(request)
    user = await runtime.db.aread(lambda conn: _users.user_by_email(conn, email))
    locked = await _locked_for(request, email)
    if locked:
        await _audit_attempt(request, user, "failure", "locked")
        return render(
            request,
            "signin.html",
            status=429,
            email=email,
            error=_LOCKED.format(minutes=max(1, -(-locked // 60))),
        )
    good = cred.verify_password(user["password_hash"] if user else None, password)
    if user is None or not good or user["disabled_at"] is not None:
        reason = "unknown_user" if user is None else ("password" if not good else "disabled")
        return await _refuse(request, email, user, reason, "signin.html", _FAILED)
    stage = CODE if user["totp_enabled_at"] is not None else ENROL
    now = runtime.now()
    ip, agent = client_ip(request), request.headers.get("user-agent")
    token = await runtime.db.awrite(
        lambda conn: _sessions.open_session(
            conn, runtime.vault, user, stage, now=now, source_ip=ip, user_agent=agent
        )
    )
    response = redirect(_STAGE_PAGES[stage])
    set_cookie(request, response, SESSION, token)
    clear_cookie(request, response, PRE_SESSION)
    return response


# --- step 2: the second factor ----------------------------------------------------------------


async def _at_stage(request: Request, stage: str) -> _sessions.Session:
    session = await current_session(request)
    if session is None or session.stage != stage:
        raise SignInRequired()
    return session


@router.get("/signin/code")
async def code_page(request: Request) -> Response:
    await _at_stage(request, CODE)
    return render(request, "signin_code.html")


@router.post("/signin/code")
async def code(request: Request, code: Text) -> Response:
    session = await _at_stage(request, CODE)
    runtime = runtime_of(request)
    user = session.user
    locked = await _locked_for(request, user["email"])
    if locked:
        await _audit_attempt(request, user, "failure", "locked")
        return render(
            request,
            "signin_code.html",
            status=429,
            error=_LOCKED.format(minutes=max(1, -(-locked // 60))),
        )
    now = runtime.now()
    used = await runtime.db.awrite(
        lambda conn: _users.check_second_factor(conn, runtime.vault, user, code, now=now)
    )
    if used is None:
        return await _refuse(
            request,
            user["email"],
            user,
            "code",
            "signin_code.html",
            "That code is not right (or was used already).",
        )
    return await _next_stage(request, session, user, via=used)


async def _next_stage(
    request: Request,
    session: _sessions.Session,
    user: dict[str, Any],
    *,
    via: str,
    extra: dict[str, Any] | None = None,
) -> Response:
    """After a step: the password page when the password is one-time, else signed in."""
    runtime = runtime_of(request)
    now = runtime.now()
    stage = NEW_PASSWORD if user["password_must_change"] else _sessions.FULL

    def advance(conn: Any) -> str:
        token = _sessions.advance(conn, runtime.vault, session, stage, now)
        if stage == _sessions.FULL:
            _signed_in(conn, request, user, via, now)
        return token

    token = await runtime.db.awrite(advance)
    if extra is not None:  # the recovery codes: shown on this response only
        bind_csrf(request, token)
        request.scope["console_session"] = None
        response: Response = render(
            request, "recovery_codes.html", **extra, next=_STAGE_PAGES.get(stage, HOME)
        )
    else:
        response = redirect(_STAGE_PAGES.get(stage, HOME))
    set_cookie(request, response, SESSION, token)
    return response


def _signed_in(conn: Any, request: Request, user: dict[str, Any], via: str, now: Any) -> None:
    runtime = runtime_of(request)
    _users.touch_sign_in(conn, user["id"], now)
    record(
        conn,
        runtime.vault,
        actor(request, user["id"]),
        "console.signin",
        now=now,
        target=user["id"],
        account_id=user["account_id"],
        details={"secondFactor": via},
    )


@router.get("/signin/enrol")
async def enrol_page(request: Request) -> Response:
    session = await _at_stage(request, ENROL)
    runtime = runtime_of(request)
    user = session.user
    secret = await runtime.db.awrite(
        lambda conn: _users.pending_secret(conn, runtime.vault, _users.get_user(conn, user["id"]))
    )
    return _enrol_form(request, user, secret)


def _enrol_form(request: Request, user: dict[str, Any], secret: str, **extra: Any) -> Response:
    uri = cred.provisioning_uri(secret, user["email"])
    return render(request, "signin_enrol.html", qr=cred.qr_svg(uri), secret=secret, **extra)


@router.post("/signin/enrol")
async def enrol(request: Request, code: Text) -> Response:
    session = await _at_stage(request, ENROL)
    runtime = runtime_of(request)
    now = runtime.now()
    who = actor(request, session.user["id"])

    def finish(conn: Any) -> tuple[dict[str, Any], list[str] | None]:
        user = _users.get_user(conn, session.user["id"])
        return user, _users.finish_enrolment(conn, runtime.vault, user, code, now=now, actor=who)

    user, codes = await runtime.db.awrite(finish)
    if codes is None:
        await _count_failure(request, user["email"])
        await _audit_attempt(request, user, "failure", "enrol_code")
        secret = _users.totp_secret(runtime.vault, user) or ""
        return _enrol_form(request, user, secret, error="That code is not right; try the next one.")
    return await _next_stage(request, session, user, via="totp", extra={"codes": codes})


# --- step 3: a password of one's own -----------------------------------------------------------


@router.get("/signin/password")
async def password_page(request: Request) -> Response:
    await _at_stage(request, NEW_PASSWORD)
    return render(request, "signin_password.html", minimum=cred.MIN_PASSWORD)


@router.post("/signin/password")
async def new_password(request: Request, password: Text, confirm: Text) -> Response:
    session = await _at_stage(request, NEW_PASSWORD)
    runtime = runtime_of(request)
    if password != confirm:
        return render(
            request,
            "signin_password.html",
            status=400,
            minimum=cred.MIN_PASSWORD,
            error="The two passwords differ.",
        )
    now = runtime.now()
    who = actor(request, session.user["id"])

    def change(conn: Any) -> str:
        user = _users.get_user(conn, session.user["id"])
        _users.set_password(conn, runtime.vault, user, password, now=now, actor=who)
        token = _sessions.advance(conn, runtime.vault, session, _sessions.FULL, now)
        _signed_in(conn, request, user, "totp", now)
        return token

    from msgine.server.errors import InvalidRequest

    try:
        token = await runtime.db.awrite(change)
    except InvalidRequest as exc:
        return render(
            request,
            "signin_password.html",
            status=400,
            minimum=cred.MIN_PASSWORD,
            error=exc.message,
        )
    response = redirect(HOME)
    set_cookie(request, response, SESSION, token)
    return response


# --- signing out and sessions -----------------------------------------------------------------


@router.post("/signout")
async def signout(
    request: Request, user: ConsoleUser = Depends(require("console:view"))
) -> Response:
    def end(conn: Any, now: datetime) -> dict[str, Any]:
        _sessions.end(conn, user.session_id, now)
        return {}

    await _end_sessions(request, user, "console.signout", user.session_id, end)
    return _signed_out(request, SIGN_IN)


async def _end_sessions(
    request: Request,
    user: ConsoleUser,
    action: str,
    target: str,
    end: Callable[[Any, datetime], dict[str, Any] | None],
) -> None:
    """Run ``end`` (which ends sessions; its details, or None for nothing done) and audit it."""
    runtime = runtime_of(request)
    now = runtime.now()

    def write(conn: Any) -> None:
        details = end(conn, now)
        if details is not None:
            record(
                conn,
                runtime.vault,
                actor(request, user.id),
                action,
                now=now,
                target=target,
                account_id=user.account_id,
                details=details,
            )

    await runtime.db.awrite(write)


def _signed_out(request: Request, to: str) -> Response:
    response = redirect(to)
    if to == SIGN_IN:
        clear_cookie(request, response, SESSION)
    return response


@router.get("/sessions")
async def sessions_page(
    request: Request, user: ConsoleUser = Depends(require("console:view"))
) -> Response:
    runtime = runtime_of(request)
    now, limits = runtime.now(), timeouts(runtime)
    rows = await runtime.db.aread(lambda conn: _sessions.open_sessions(conn, user.id, now, limits))
    return render(request, "sessions.html", sessions=rows, current=user.session_id)


@router.post("/sessions/end-all")
async def end_all(
    request: Request, user: ConsoleUser = Depends(require("console:view"))
) -> Response:
    """Sign out everywhere: every session of this user, this one included."""

    def end(conn: Any, now: datetime) -> dict[str, Any]:
        return {"sessionsEnded": _users.end_user_sessions(conn, user.id, now)}

    await _end_sessions(request, user, "console.signout_everywhere", user.id, end)
    return _signed_out(request, SIGN_IN)


@router.post("/sessions/{session_id}/end")
async def end_one(
    session_id: str, request: Request, user: ConsoleUser = Depends(require("console:view"))
) -> Response:
    def end(conn: Any, now: datetime) -> dict[str, Any] | None:
        return {} if _sessions.end_own(conn, user.id, session_id, now) else None

    await _end_sessions(request, user, "console.session_end", session_id, end)
    return _signed_out(request, SIGN_IN if session_id == user.session_id else f"{BASE}/sessions")
