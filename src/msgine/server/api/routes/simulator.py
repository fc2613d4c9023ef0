"""Routes: the simulator carrier's inbound SMS (test-mode keys only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StrictStr

from msgine.server.api._deps import require, runtime_of
from msgine.server.compliance._inbound import store_inbound
from msgine.server.crypto import Vault
from msgine.server.errors import Forbidden
from msgine.server.keys import Principal
from msgine.server.messages._numbers import normalize_number
from msgine.server.messages._text import sanitize

router = APIRouter(tags=["simulator"])
can_send = require("messages:send")

#: Called inside the inbound transaction: (conn, vault, inbound, now) -> extra response fields.
#: The compliance module handles STOP/START/HELP here.
InboundHandler = Callable[[sa.Connection, Vault, dict[str, Any], Any], dict[str, Any]]


class InboundBody(BaseModel):
    from_: StrictStr = Field(alias="from")
    to: StrictStr | None = None
    message: StrictStr = Field(max_length=2000)


@router.post("/simulator/inbound", status_code=201)
async def simulate_inbound(
    body: InboundBody, request: Request, principal: Annotated[Principal, Depends(can_send)]
) -> dict[str, Any]:
    """Deliver an inbound SMS as if a phone had replied (test keys only)."""
    if principal.mode != "test":
        raise Forbidden("The simulator accepts test-mode keys only.")
    runtime = runtime_of(request)
    phone = normalize_number(body.from_, field="from")
    to = normalize_number(body.to, field="to") if body.to else None
    text = sanitize(body.message)
    now = runtime.now()
    handlers: list[InboundHandler] = request.app.state.inbound_handlers

    def apply(conn: sa.Connection) -> dict[str, Any]:
        inbound = store_inbound(conn, runtime.vault, principal.account_id, phone, to, text, now)
        result: dict[str, Any] = {"id": inbound["id"], "receivedAt": now.isoformat()}
        for handler in handlers:
            result.update(handler(conn, runtime.vault, inbound, now))
        return result

    return await runtime.db.awrite(apply)
