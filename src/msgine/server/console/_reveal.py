"""``POST /console/reveal``: one masked number, shown to a role allowed to see it, audited.

Pages put a small form beside a masked number (``reveal_form`` in ``_macros.html``): fields
``kind`` and ``ref`` name where the number is stored. With JavaScript the number replaces the
mask in place (the answer is JSON); without, the answer is a page showing it.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import JSONResponse, Response

from msgine.server.audit import record
from msgine.server.messages import recipient_phone

from ._masking import mask_phone, register_revealer, revealer
from ._web import BASE, HOME, ConsoleUser, Refused, actor, render, require, runtime_of

router = APIRouter()

# A message recipient's number (ref: the recipient's id).
register_revealer("recipient", recipient_phone)


@router.post("/reveal")
async def reveal(
    request: Request,
    kind: Annotated[str, Form(max_length=32)],
    ref: Annotated[str, Form(max_length=64)],
    user: ConsoleUser = Depends(require("numbers:reveal")),
) -> Response:
    find = revealer(kind)
    if find is None:
        raise Refused("Numbers of this kind cannot be revealed.", reason="kind")
    runtime = runtime_of(request)
    now = runtime.now()
    who = actor(request, user.id)

    def read_and_record(conn: Any) -> str | None:
        number = find(conn, runtime.vault, user.account_id, ref)
        record(
            conn,
            runtime.vault,
            who,
            "console.number_reveal",
            now=now,
            target=f"{kind}:{ref}",
            account_id=user.account_id,
            outcome="success" if number else "not_found",
            details={"kind": kind},
        )
        return number

    number = await runtime.db.awrite(read_and_record)
    status = 200 if number else 404
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"number": number}, status_code=status)
    return render(
        request,
        "reveal.html",
        status=status,
        number=number,
        masked=mask_phone(number),
        back=_back(request),
    )


def _back(request: Request) -> str:
    """Back to the page the reveal came from (a console path only, never another site)."""
    path = urlsplit(request.headers.get("referer", "")).path
    return path if path.startswith(BASE + "/") else HOME
