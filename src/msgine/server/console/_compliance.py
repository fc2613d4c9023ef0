"""``/console/compliance``: consents held, the newest consent changes, the suppression list,
and the policy behind quiet hours and consent, for the live or the test world.

A role with ``compliance:manage`` may take a number off the suppression list (the service the
API's ``DELETE /suppressions/{phone}`` calls, audited as the user); consents and the policy
change through the API, inbound keywords and the CLI. Numbers are masked; reveals (kinds
``consent`` and ``suppression``) are audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from msgine.server.compliance import (
    compliance_overview,
    consent_number,
    remove_suppression,
    suppressed_number,
)

from ._masking import register_revealer
from ._pages import mode_of
from ._web import BASE, ConsoleUser, actor, render, require, runtime_of

router = APIRouter()

register_revealer("consent", consent_number)
register_revealer("suppression", suppressed_number)


@router.get("/compliance")
async def compliance_page(
    request: Request,
    mode: str | None = None,
    done: str | None = None,
    user: ConsoleUser = Depends(require("console:view")),
) -> Response:
    shown = mode_of(mode) or "live"
    runtime = runtime_of(request)
    overview = await runtime.db.aread(
        lambda conn: compliance_overview(conn, runtime.vault, user.account_id, shown)
    )
    removed = done == "removed"
    return render(request, "compliance.html", overview=overview, mode=shown, removed=removed)


@router.post("/compliance/suppressions/remove")
async def remove(
    request: Request,
    ref: Annotated[str, Form(max_length=64)],
    user: ConsoleUser = Depends(require("compliance:manage")),
) -> Response:
    runtime = runtime_of(request)
    who, now = actor(request, user.id), runtime.now()
    await runtime.db.awrite(
        lambda conn: remove_suppression(
            conn, runtime.vault, who, account_id=user.account_id, ref=ref, now=now
        )
    )
    mode = mode_of(ref.partition(":")[0])
    return RedirectResponse(f"{BASE}/compliance?mode={mode}&done=removed", status_code=303)
