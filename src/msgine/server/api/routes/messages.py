"""Routes: sending and reading messages, on MsGine's paths and the official SDK's paths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.responses import JSONResponse

from msgine.server.api._deps import authenticate_request, json_body, require, runtime_of
from msgine.server.keys import Principal
from msgine.server.messages._service import (
    SendCommand,
    accept,
    build_command,
    get_message,
    list_messages,
)

router = APIRouter(tags=["messages"])
can_read = require("messages:read")

#: Checks run before the send transaction (rate limits, geo permissions). Each returns the
#: recipients it rejects, as {number: error code}, or raises to refuse the whole request.
SendPrecheck = Callable[[Request, Principal, SendCommand], Awaitable[dict[str, str]]]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "invalid_request, invalid_phone_number, message_empty, message_too_long, "
        "invalid_sender_id, insecure_callback_url"
    },
    401: {"description": "unauthorized"},
    403: {"description": "forbidden"},
    409: {"description": "idempotency_conflict"},
    413: {"description": "payload_too_large"},
    429: {"description": "rate_limit_exceeded"},
}


class SendBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    to: StrictStr | list[StrictStr]
    message: StrictStr
    from_: StrictStr | None = Field(default=None, alias="from")
    callbackUrl: StrictStr | None = None
    scheduledFor: datetime | None = None
    idempotencyKey: StrictStr | None = None
    type: Literal["transactional", "marketing"] = "transactional"


async def send(request: Request) -> JSONResponse:
    """Runs for every message, so it authenticates and parses its own body: FastAPI's
    dependency and body machinery cost more than the validation itself. The OpenAPI schema
    below describes the body and header it reads."""
    principal = await authenticate_request(request, "messages:send")
    body = await json_body(request, SendBody)
    idempotency_key = request.headers.get("idempotency-key")
    runtime = runtime_of(request)
    now = runtime.now()
    cmd = build_command(
        to=body.to,
        message=body.message,
        sender=body.from_,
        callback_url=body.callbackUrl,
        scheduled_for=body.scheduledFor,
        message_type=body.type,
        idempotency_key=idempotency_key or body.idempotencyKey,
        now=now,
    )
    rejected: dict[str, str] = {}
    for check in request.app.state.send_prechecks:
        rejected.update(await check(request, principal, cmd))
    settings = runtime.settings
    result = await runtime.db.awrite(
        lambda conn: accept(
            conn,
            runtime.vault,
            principal,
            cmd,
            now=now,
            price_per_segment=settings.price_per_segment,
            currency=settings.currency,
            prechecked=rejected,
        )
    )
    # X-RateLimit-* are added to every authenticated response by the rate-limit middleware.
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONResponse(result.response, status_code=201, headers=headers)


SEND_SCHEMA: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": SendBody.model_json_schema(by_alias=True)}},
    },
}

for path in ("/messages/sms", "/developers/sms"):
    router.add_api_route(
        path,
        send,
        methods=["POST"],
        status_code=201,
        responses=ERRORS,
        summary="Send an SMS to one or more recipients",
        openapi_extra=SEND_SCHEMA,
    )


async def get_one(
    message_id: str, request: Request, principal: Annotated[Principal, Depends(can_read)]
) -> dict[str, Any]:
    runtime = runtime_of(request)
    return await runtime.db.aread(
        lambda conn: get_message(conn, runtime.vault, principal.account_id, message_id)
    )


for path in ("/messages/{message_id}", "/developers/{message_id}"):
    router.add_api_route(
        path,
        get_one,
        methods=["GET"],
        responses={404: {"description": "not_found"}, **ERRORS},
        summary="A message with its recipients' current statuses",
    )


async def history(
    request: Request,
    principal: Annotated[Principal, Depends(can_read)],
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    status: Annotated[
        Literal["pending", "scheduled", "queued", "sent", "delivered", "failed", "rejected"] | None,
        Query(),
    ] = None,
) -> dict[str, Any]:
    runtime = runtime_of(request)
    return await runtime.db.aread(
        lambda conn: list_messages(
            conn, runtime.vault, principal.account_id, page=page, limit=limit, status=status
        )
    )


for path in ("/messages", "/developers/sms/history"):
    router.add_api_route(
        path, history, methods=["GET"], responses=ERRORS, summary="Messages, newest first"
    )
