"""Routes: the simulator carrier's inbound SMS (test-mode keys only).

A simulated message is test traffic: it is stored in test mode, its STOP and START change only
the test world's opt-outs, its events go only to test-mode endpoints, and a START that would
lift an opt-out needs ``compliance:manage`` (refused with 403 before anything is stored).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from msgine.server.api._deps import require, runtime_of
from msgine.server.api._openapi import answers
from msgine.server.api._schemas import InboundResult
from msgine.server.compliance import store_inbound
from msgine.server.crypto import Vault
from msgine.server.errors import Forbidden
from msgine.server.keys import Principal
from msgine.server.messages import normalize_number, sanitize

router = APIRouter(tags=["simulator"])
can_send = require("messages:send")

#: Called inside the inbound transaction: (conn, vault, inbound, now) -> extra response fields.
#: The compliance module handles STOP/START/HELP here.
InboundHandler = Callable[[sa.Connection, Vault, dict[str, Any], Any], dict[str, Any]]


class InboundBody(BaseModel):
    model_config = ConfigDict(
        strict=True, json_schema_extra={"examples": [{"from": "+256701521269", "message": "HELP"}]}
    )

    from_: StrictStr = Field(alias="from")
    to: StrictStr | None = None
    message: StrictStr = Field(max_length=2000)


@router.post(
    "/simulator/inbound",
    operation_id="simulate_inbound",
    **answers(InboundResult, 413, status=201),
)
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
        inbound = store_inbound(
            conn, runtime.vault, principal.account_id, phone, to, text, now, principal.mode
        )
        inbound["may_lift_opt_out"] = "compliance:manage" in principal.scopes
        result: dict[str, Any] = {"id": inbound["id"], "receivedAt": now.isoformat()}
        for handler in handlers:
            result.update(handler(conn, runtime.vault, inbound, now))
        return result

    return await runtime.db.awrite(apply)
