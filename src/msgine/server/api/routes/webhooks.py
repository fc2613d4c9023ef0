"""Routes: webhook endpoints, secrets, deliveries log and replay (scope ``webhooks:manage``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictStr
from starlette.responses import Response

from msgine.server import events
from msgine.server import webhooks as service
from msgine.server.api._deps import actor_of, require, runtime_of
from msgine.server.api._openapi import answers
from msgine.server.api._schemas import (
    DeliveryList,
    DeliveryView,
    NewWebhookView,
    RotatedSecretView,
    WebhookList,
    WebhookView,
)
from msgine.server.api._text import PlainText
from msgine.server.keys import Principal
from msgine.server.runtime import Runtime
from msgine.server.webhooks import Dispatcher, UrlPolicy, checked_url

router = APIRouter(tags=["webhooks"])
T = TypeVar("T")
manage = require("webhooks:manage")
Manager = Annotated[Principal, Depends(manage)]


class CreateEndpoint(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"url": "https://localhost:8443/msgine", "events": ["message.delivered"]}]
        },
    )
    url: StrictStr
    events: list[StrictStr] | None = Field(default=None, max_length=20)
    description: PlainText | None = Field(default=None, max_length=500)


class UpdateEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    url: StrictStr | None = None
    events: list[StrictStr] | None = Field(default=None, max_length=20)
    description: PlainText | None = Field(default=None, max_length=500)
    enabled: StrictBool | None = None


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    graceHours: StrictFloat = Field(
        default=service.DEFAULT_GRACE_HOURS, ge=0, le=service.MAX_GRACE_HOURS
    )


def url_policy(runtime: Runtime) -> UrlPolicy:
    return UrlPolicy.from_settings(runtime.settings)


def secret_view(new: service.NewSecret) -> dict[str, Any]:
    expires = new.previous_expires_at
    return {
        "secret": new.secret,
        "previousSecretExpiresAt": events.iso(expires) if expires else None,
    }


@router.post("/webhooks", operation_id="create_webhook", **answers(NewWebhookView, 413, status=201))
async def create_endpoint(
    body: CreateEndpoint, request: Request, principal: Manager
) -> dict[str, Any]:
    """Register an endpoint. Its signing secret is in this response and nowhere else."""
    runtime = runtime_of(request)
    url = await checked_url(body.url, url_policy(runtime))
    subscribed = service.normalise_events(body.events)
    row, secret = await _change(
        request,
        principal,
        service.create_endpoint,
        url=url,
        subscribed=subscribed,
        description=body.description,
    )
    return {**service.endpoint_view(row), "secret": secret}


@router.get("/webhooks", operation_id="list_webhooks", **answers(WebhookList))
async def list_endpoints(request: Request, principal: Manager) -> dict[str, Any]:
    runtime = runtime_of(request)
    rows = await runtime.db.aread(
        lambda conn: service.list_endpoints(conn, principal.account_id, principal.mode)
    )
    return {"webhooks": [service.endpoint_view(r) for r in rows]}


@router.get("/webhooks/{endpoint_id}", operation_id="get_webhook", **answers(WebhookView, 404))
async def get_endpoint(endpoint_id: str, request: Request, principal: Manager) -> dict[str, Any]:
    runtime = runtime_of(request)
    row = await runtime.db.aread(
        lambda conn: service.get_endpoint(conn, principal.account_id, endpoint_id, principal.mode)
    )
    return service.endpoint_view(row)


@router.patch(
    "/webhooks/{endpoint_id}", operation_id="update_webhook", **answers(WebhookView, 404, 413)
)
async def update_endpoint(
    endpoint_id: str, body: UpdateEndpoint, request: Request, principal: Manager
) -> dict[str, Any]:
    runtime = runtime_of(request)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude_none=True)
    if body.url is not None:
        changes["url"] = await checked_url(body.url, url_policy(runtime))
    if "events" in body.model_fields_set:
        changes["events"] = service.normalise_events(body.events)
    row = await _change(
        request, principal, service.update_endpoint, endpoint_id=endpoint_id, changes=changes
    )
    return service.endpoint_view(row)


@router.delete(
    "/webhooks/{endpoint_id}",
    operation_id="delete_webhook",
    **answers(None, 404, status=204, description="Deleted"),
)
async def delete_endpoint(endpoint_id: str, request: Request, principal: Manager) -> Response:
    await _change(request, principal, service.delete_endpoint, endpoint_id=endpoint_id)
    return Response(status_code=204)


@router.post(
    "/webhooks/{endpoint_id}/rotate-secret",
    operation_id="rotate_webhook_secret",
    **answers(RotatedSecretView, 404, 413),
)
async def rotate_secret(
    endpoint_id: str, request: Request, principal: Manager, body: RotateSecret | None = None
) -> dict[str, Any]:
    """A new secret, shown once; the old one keeps signing alongside it for ``graceHours``."""
    grace = timedelta(hours=(body or RotateSecret()).graceHours)
    new = await _change(
        request, principal, service.rotate_endpoint_secret, endpoint_id=endpoint_id, grace=grace
    )
    return {"id": endpoint_id, **secret_view(new)}


DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]


@router.get(
    "/webhooks/{endpoint_id}/deliveries",
    operation_id="list_deliveries",
    **answers(DeliveryList, 404),
)
async def list_deliveries(
    endpoint_id: str,
    request: Request,
    principal: Manager,
    limit: Annotated[int, Query(ge=1, le=service.MAX_DELIVERY_PAGE)] = 20,
    status: DeliveryStatus | None = None,
) -> dict[str, Any]:
    """The endpoint's newest deliveries, each with its attempts (time, status, latency, error)."""
    runtime = runtime_of(request)
    rows = await runtime.db.aread(
        lambda conn: service.list_deliveries(
            conn,
            principal.account_id,
            endpoint_id,
            limit=limit,
            status=status,
            mode=principal.mode,
        )
    )
    return {"deliveries": [service.delivery_view(r) for r in rows]}


@router.post(
    "/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay",
    operation_id="replay_delivery",
    **answers(DeliveryView, 404, status=202),
)
async def replay_delivery(
    endpoint_id: str, delivery_id: str, request: Request, principal: Manager
) -> dict[str, Any]:
    """Send the delivery's event again (same id, same body) as a new delivery."""
    row = await _change(
        request,
        principal,
        service.replay_delivery,
        endpoint_id=endpoint_id,
        delivery_id=delivery_id,
    )
    return service.delivery_view(row)


class TestEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    event: Literal[events.EVENT_TYPES] = "message.delivered"  # type: ignore[valid-type]


@router.post(
    "/webhooks/{endpoint_id}/test",
    operation_id="send_test_event",
    **answers(DeliveryView, 404, 413, status=202),
)
async def send_test_event(
    endpoint_id: str, request: Request, principal: Manager, body: TestEvent | None = None
) -> dict[str, Any]:
    """Send a made-up event (``data.test`` true, a fictional number) to this endpoint only."""
    event_type = (body or TestEvent()).event
    row = await _change(
        request, principal, service.send_test_event, endpoint_id=endpoint_id, event_type=event_type
    )
    return service.delivery_view(row)


async def _change(
    request: Request, principal: Principal, change: Callable[..., T], **fields: Any
) -> T:
    """One of the service's changes, in the key's account and mode, audited as the key."""
    runtime = runtime_of(request)
    actor, now = actor_of(request, principal), runtime.now()
    return await runtime.db.awrite(
        lambda conn: change(
            conn,
            runtime.vault,
            actor,
            account_id=principal.account_id,
            mode=principal.mode,
            now=now,
            **fields,
        )
    )


def install(app: Any) -> None:
    """Raise ``message.received`` for inbound SMS, and give ``drain`` a one-pass dispatcher."""
    app.state.inbound_handlers.append(events.message_received)
    holder: list[Dispatcher] = []

    async def dispatch_step() -> int:
        if not holder:
            holder.append(Dispatcher(app.state.runtime))
        return await holder[0].run_once()

    async def close_dispatcher() -> None:
        while holder:
            await holder.pop().aclose()

    app.state.drain_steps.append(dispatch_step)
    app.state.shutdown_hooks.append(close_dispatcher)
