"""Routes: sending and reading messages, on MsGine's paths and the official SDK's paths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.responses import JSONResponse

from msgine.server.api._deps import authenticate_request, json_body, require, runtime_of
from msgine.server.api._responses import JSONBody
from msgine.server.api.routes import API_PREFIX
from msgine.server.carriers import price_for_send
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
    """A plain Starlette endpoint: it runs for every message, and FastAPI's request handling
    (dependency solving, body machinery) cost more than the validation itself. It
    authenticates and parses its own body; ``install`` describes it in the OpenAPI schema."""
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
    # Each recipient's route price; a live send no real carrier's route covers is refused.
    pricing = await price_for_send(runtime, principal.account_id, principal.mode, cmd.to)
    result = await runtime.db.awrite(
        lambda conn: accept(
            conn,
            runtime.vault,
            principal,
            cmd,
            now=now,
            price_per_segment=settings.price_per_segment,
            currency=pricing.currency,
            prechecked=rejected,
            prices=pricing.prices,
            notice=pricing.notice,
        )
    )
    # X-RateLimit-* are added to every authenticated response by the rate-limit middleware.
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONBody(result.response, status_code=201, headers=headers)


SEND_PATHS = ("/messages/sms", "/developers/sms")
for path in SEND_PATHS:
    router.add_route(path, send, methods=["POST"], include_in_schema=False)


def send_operation() -> dict[str, Any]:
    """The OpenAPI operation of ``send``, as FastAPI would have described it."""
    responses: dict[str, Any] = {
        "201": {
            "description": "Stored: the message with each recipient's first status",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }
    responses.update({str(status): spec for status, spec in ERRORS.items()})
    return {
        "tags": ["messages"],
        "summary": "Send an SMS to one or more recipients",
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
        "responses": responses,
    }


def install(app: FastAPI) -> None:
    """Add the send routes to the app's OpenAPI schema (plain routes are not in it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in SEND_PATHS:
                operation_id = "send" + path.replace("/", "_") + "_post"
                operation = {**send_operation(), "operationId": operation_id}
                shared = {str(status): spec for status, spec in app.router.responses.items()}
                operation["responses"] = {**shared, **operation["responses"]}
                schema["paths"].setdefault(API_PREFIX + path, {})["post"] = operation
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


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
        Literal[
            "pending", "scheduled", "queued", "sent", "unknown", "delivered", "failed", "rejected"
        ]
        | None,
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
