"""``/console/compliance``: consents held, the newest consent changes, the suppression list,
and the policy behind quiet hours and consent, for the live or the test world.

Read-only: consents and suppressions change through the API, inbound keywords and the CLI,
whose audit trail this page's numbers come from. Numbers are masked; reveals (kinds
``consent`` and ``suppression``) are audited.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from msgine.server.compliance import compliance_overview, consent_number, suppressed_number

from ._masking import register_revealer
from ._pages import mode_of
from ._web import ConsoleUser, render, require, runtime_of

router = APIRouter()

register_revealer("consent", consent_number)
register_revealer("suppression", suppressed_number)


@router.get("/compliance")
async def compliance_page(
    request: Request, mode: str | None = None, user: ConsoleUser = Depends(require("console:view"))
) -> Response:
    shown = mode_of(mode) or "live"
    runtime = runtime_of(request)
    overview = await runtime.db.aread(
        lambda conn: compliance_overview(conn, runtime.vault, user.account_id, shown)
    )
    return render(request, "compliance.html", overview=overview, mode=shown)
