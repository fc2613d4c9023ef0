"""``/console/audit``: the account's audit entries, newest first, and the state of the whole
hash chain, verified when the page is drawn (as ``msgine audit verify`` does, against the
published head in MSGINE_AUDIT_ANCHOR_FILE when there is one, which also catches deleted
newest entries)."""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from msgine.server.audit import (
    AnchorError,
    ChainAnchor,
    ChainState,
    chain_state,
    list_entries,
    load_anchor,
)
from msgine.server.runtime import Runtime

from ._web import ConsoleUser, render, require, runtime_of

router = APIRouter()
PAGE_SIZE: Final = 50
MAX_SEQUENCE: Final = 2**63 - 1


@router.get("/audit")
async def audit_page(
    request: Request,
    before: int | None = Query(default=None, ge=1, le=MAX_SEQUENCE),
    user: ConsoleUser = Depends(require("audit:read")),
) -> Response:
    runtime = runtime_of(request)
    anchor, anchor_problem = _anchor(runtime)

    def read(conn: sa.Connection) -> tuple[list[dict[str, Any]], ChainState]:
        entries = list_entries(conn, user.account_id, limit=PAGE_SIZE, before_seq=before)
        return entries, chain_state(conn, runtime.vault, anchor)

    entries, state = await runtime.db.aread(read)
    older = entries[-1]["seq"] if len(entries) == PAGE_SIZE else None
    return render(
        request,
        "audit.html",
        entries=entries,
        state=state,
        anchor_problem=anchor_problem,
        older=older,
    )


def _anchor(runtime: Runtime) -> tuple[ChainAnchor | None, str | None]:
    """The head published outside the database, if the operator configured one."""
    path = runtime.settings.audit_anchor_file
    if path is None or not path.exists():
        return None, None
    try:
        return load_anchor(path), None
    except AnchorError:
        return None, "The published chain head could not be read; verified without it."
