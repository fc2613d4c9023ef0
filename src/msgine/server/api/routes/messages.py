"""Routes: sending and reading messages, on MsGine's paths and the official SDK's paths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator
from starlette.responses import JSONResponse, Response

from msgine.server import metrics
from msgine.server.api._deps import authenticate_request, json_body, require, runtime_of
from msgine.server.api._openapi import answers, with_body
from msgine.server.api._responses import JSONBody
from msgine.server.api._schemas import MessagePage, MessageView
from msgine.server.carriers import price_for_send
from msgine.server.errors import InvalidRequest
from msgine.server.keys import Principal
from msgine.server.messages import (
    MessageStatus,
    SendCommand,
    accept,
    build_command,
    get_message,
    list_messages,
    send_reads,
)
from msgine.server.webhooks import UrlPolicy, checked_url

router = APIRouter(tags=["messages"])
can_read = require("messages:read")

#: Checks run before the send transaction (rate limits, geo permissions). Each returns the
#: recipients it rejects, as {number: error code}, or raises to refuse the whole request.
SendPrecheck = Callable[[Request, Principal, SendCommand], Awaitable[dict[str, str]]]


class SendBody(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={"examples": [{"to": "+256701521269", "message": "Hello from MsGine"}]},
    )

    to: StrictStr | list[StrictStr]
    message: StrictStr
    from_: StrictStr | None = Field(default=None, alias="from")
    callbackUrl: StrictStr | None = None
    scheduledFor: datetime | None = None
    idempotencyKey: StrictStr | None = Field(default=None, min_length=1, max_length=255)
    type: Literal["transactional", "marketing"] = "transactional"

    @field_validator("scheduledFor", mode="before")
    @classmethod
    def _iso_only(cls, value: Any) -> Any:
        """pydantic reads a number, or a string of digits, as a Unix time; the API takes an ISO
        8601 string only (as documented: ``format: date-time``)."""
        digits = isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit()
        if value is not None and (not isinstance(value, str) or digits):
            raise ValueError("scheduledFor must be an ISO 8601 date and time")
        return value


async def send(request: Request) -> JSONResponse:
    """A plain Starlette endpoint: it runs for every message, and FastAPI's request handling
    (dependency solving, body machinery) cost more than the validation itself. It
    authenticates and parses its own body; ``install`` describes it in the OpenAPI schema."""
    principal = await authenticate_request(request, "messages:send")
    body = await json_body(request, SendBody)
    idempotency_key = _idempotency_key(request, body.idempotencyKey)
    runtime = runtime_of(request)
    now = runtime.now()
    cmd = build_command(
        to=body.to,
        message=body.message,
        sender=body.from_,
        callback_url=body.callbackUrl,
        scheduled_for=body.scheduledFor,
        message_type=body.type,
        idempotency_key=idempotency_key,
        now=now,
    )
    if cmd.callback_url is not None:
        # The same destination policy as a registered endpoint, before anything is stored.
        await checked_url(cmd.callback_url, UrlPolicy.from_settings(runtime.settings))
    rejected: dict[str, str] = {}
    for check in request.app.state.send_prechecks:
        rejected.update(await check(request, principal, cmd))
    settings = runtime.settings
    # Each recipient's route price; a live send no real carrier's route covers is refused.
    pricing = await price_for_send(runtime, principal.account_id, principal.mode, cmd.to)
    indexes, reads = send_reads(runtime.vault, principal, cmd)
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
            indexes=indexes,
        ),
        reads=reads,
    )
    if not result.replayed:
        for status, count in result.response["recipientCounts"].items():
            metrics.status_reached(status, carrier="", mode=principal.mode, count=count)
    # X-RateLimit-* are added to every authenticated response by the rate-limit middleware.
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONBody(result.response, status_code=201, headers=headers)


def _idempotency_key(request: Request, in_body: str | None) -> str | None:
    """The one idempotency key of a send. A header present but empty or over 255 characters is
    an error, not a request sent without one (a retry would then send the message twice); two
    headers, or a header and a different body field, are refused rather than one of them
    silently winning."""
    headers = request.headers.getlist("idempotency-key")
    if any(not 1 <= len(value) <= 255 for value in headers):
        raise InvalidRequest(
            "Idempotency-Key must be 1 to 255 characters.", details={"field": "Idempotency-Key"}
        )
    if len(headers) > 1 or (headers and in_body is not None and headers[0] != in_body):
        raise InvalidRequest(
            "Send one idempotency key: the Idempotency-Key header or idempotencyKey.",
            details={"field": "Idempotency-Key", "reason": "conflicting_idempotency_keys"},
        )
    return headers[0] if headers else in_body


SEND_PATHS = ("/messages/sms", "/developers/sms")


async def send_route(
    request: Request,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> Response:
    """Send an SMS to one or more recipients.

    ``DirectRoutes`` answers these paths with ``send`` before the router is reached, so this
    route exists for the OpenAPI document, built from the same models (the body from
    ``SendBody``, which ``send`` parses itself); a request that does reach it is answered by
    ``send`` all the same."""
    return await send(request)


for path, operation_id in zip(SEND_PATHS, ("send_sms", "send_sms_developers"), strict=True):
    router.add_api_route(
        path,
        send_route,
        methods=["POST"],
        operation_id=operation_id,
        summary="Send an SMS to one or more recipients",
        **with_body(
            answers(
                MessageView,
                409,
                413,
                status=201,
                description="Stored: the message with each recipient's first status",
            ),
            SendBody,
        ),
    )


async def get_one(
    message_id: str, request: Request, principal: Annotated[Principal, Depends(can_read)]
) -> dict[str, Any]:
    runtime = runtime_of(request)
    return await runtime.db.aread(
        lambda conn: get_message(
            conn, runtime.vault, principal.account_id, message_id, principal.mode
        )
    )


for path, operation_id in (
    ("/messages/{message_id}", "get_message"),
    ("/developers/{message_id}", "get_message_developers"),
):
    router.add_api_route(
        path,
        get_one,
        methods=["GET"],
        operation_id=operation_id,
        summary="A message with its recipients' current statuses",
        **answers(MessageView, 404),
    )


async def history(
    request: Request,
    principal: Annotated[Principal, Depends(can_read)],
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    status: Annotated[MessageStatus | None, Query()] = None,
) -> dict[str, Any]:
    runtime = runtime_of(request)
    return await runtime.db.aread(
        lambda conn: list_messages(
            conn,
            runtime.vault,
            principal.account_id,
            page=page,
            limit=limit,
            status=status,
            mode=principal.mode,
        )
    )


for path, operation_id in (
    ("/messages", "list_messages"),
    ("/developers/sms/history", "list_messages_developers"),
):
    router.add_api_route(
        path,
        history,
        methods=["GET"],
        operation_id=operation_id,
        summary="Messages, newest first",
        **answers(MessagePage),
    )
