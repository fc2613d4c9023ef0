"""``/console/keys``: list, create (the secret shown once), rotate with grace, revoke, and mark
compromised with the usage report. Every change calls the same services as the API and CLI
(:mod:`msgine.server.keys`, :mod:`msgine.server.incident`), audited with the user as actor.

A console user acts for the account, as the operator's CLI does, in both modes: the rule that
a key never makes a stronger key is about keys, and no key is involved here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from msgine.server import incident
from msgine.server import keys as key_service

from ._web import BASE, ConsoleUser, actor, render, require, runtime_of

router = APIRouter()
manage = require("keys:manage")
PAGE = f"{BASE}/keys"


async def _flush_usage(request: Request) -> None:
    """This process's request counts into the report (as the API's usage route does)."""
    recorder = getattr(request.app.state.gateway, "usage_recorder", None)
    if recorder is not None:
        await recorder.flush()


@router.get("/keys")
async def keys_page(
    request: Request, user: ConsoleUser = Depends(require("console:view"))
) -> Response:
    runtime = runtime_of(request)
    now = runtime.now()
    rows = await runtime.db.aread(lambda conn: key_service.list_keys(conn, user.account_id))
    views = [key_service.public_view(r, now) for r in reversed(rows)]
    return render(
        request,
        "keys.html",
        title="Keys",
        keys=views,
        scopes=key_service.SCOPES,
        max_grace=key_service.MAX_GRACE_HOURS,
    )


@router.post("/keys")
async def create(
    request: Request,
    name: Annotated[str, Form(max_length=200)] = "",
    mode: Annotated[str, Form(pattern="^(test|live)$")] = "test",
    scopes: Annotated[list[str] | None, Form()] = None,
    allowed_ips: Annotated[str, Form(max_length=2000)] = "",
    expires_in_days: Annotated[int | None, Form(ge=1, le=3650)] = None,
    user: ConsoleUser = Depends(manage),
) -> Response:
    runtime = runtime_of(request)
    now = runtime.now()
    who = actor(request, user.id)
    chosen = key_service.parse_scopes(scopes or [])
    networks = [part.strip() for part in allowed_ips.replace("\n", ",").split(",") if part.strip()]
    new = await runtime.db.awrite(
        lambda conn: key_service.create_key(
            conn,
            runtime.vault,
            account_id=user.account_id,
            now=now,
            name=name.strip(),
            mode="live" if mode == "live" else "test",
            scopes=chosen,
            allowed_ips=networks,
            expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
            created_by=who.name,
            actor=who,
        )
    )
    return _show_secret(request, new, now, heading="Key created")


def _show_secret(
    request: Request,
    new: key_service.NewKey,
    now: Any,
    *,
    heading: str,
    report: dict[str, Any] | None = None,
    replaced: str | None = None,
) -> Response:
    """The one response that holds the secret (never stored, never cached: no-store)."""
    return render(
        request,
        "key_secret.html",
        title=heading,
        heading=heading,
        key=key_service.public_view(new.record, now),
        secret=new.secret,
        report=report,
        replaced=replaced,
    )


@router.post("/keys/{key_id}/rotate")
async def rotate(
    key_id: str,
    request: Request,
    grace_hours: Annotated[float, Form(ge=0, le=key_service.MAX_GRACE_HOURS)] = 24,
    user: ConsoleUser = Depends(manage),
) -> Response:
    runtime = runtime_of(request)
    now = runtime.now()
    who = actor(request, user.id)
    new = await runtime.db.awrite(
        lambda conn: key_service.rotate_key(
            conn,
            runtime.vault,
            key_id,
            now=now,
            grace=timedelta(hours=grace_hours),
            account_id=user.account_id,
            created_by=who.name,
            actor=who,
        )
    )
    return _show_secret(request, new, now, heading="Key rotated", replaced=key_id)


@router.post("/keys/{key_id}/revoke")
async def revoke(key_id: str, request: Request, user: ConsoleUser = Depends(manage)) -> Response:
    runtime = runtime_of(request)
    now = runtime.now()
    who = actor(request, user.id)
    await runtime.db.awrite(
        lambda conn: key_service.revoke_key(
            conn, key_id, now=now, vault=runtime.vault, account_id=user.account_id, actor=who
        )
    )
    return RedirectResponse(PAGE, status_code=303)


@router.post("/keys/{key_id}/compromise")
async def compromise(
    key_id: str, request: Request, user: ConsoleUser = Depends(manage)
) -> Response:
    runtime = runtime_of(request)
    now = runtime.now()
    await _flush_usage(request)
    result = await incident.acompromise(
        runtime.db,
        runtime.vault,
        key_id,
        now=now,
        actor=actor(request, user.id),
        account_id=user.account_id,
    )
    return _show_secret(
        request,
        result.replacement,
        now,
        heading="Key marked compromised",
        report=result.report,
        replaced=key_id,
    )


@router.get("/keys/{key_id}/usage")
async def usage(key_id: str, request: Request, user: ConsoleUser = Depends(manage)) -> Response:
    runtime = runtime_of(request)
    key = await runtime.db.aread(lambda conn: key_service.get_key(conn, key_id, user.account_id))
    await _flush_usage(request)
    report = await runtime.db.aread(lambda conn: incident.usage_report(conn, key))
    return render(
        request,
        "key_usage.html",
        title="Key usage",
        key=key_service.public_view(key, runtime.now()),
        report=report,
    )
