"""``/console/webhooks``: endpoints, each endpoint's deliveries (redacted request excerpts and
the receiver's answers), replay, secret rotation (the new secret shown once) and test events.

Every change calls the same service as the API route (``msgine.server.webhooks``), in one
transaction with its audit entry, as ``user:<id>``; the CSRF guard and the ``webhooks:manage``
permission stand in front of each.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Final, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from msgine.server import webhooks as service
from msgine.server.events import EVENT_TYPES

from ._pages import text_of
from ._web import BASE, ConsoleUser, actor, render, require, runtime_of

router = APIRouter()
T = TypeVar("T")
PAGE_SIZE: Final = 25
#: What a finished action says on the page it returns to (``?done=``).
DONE: Final = {
    "replayed": "The delivery was queued again: same event, same body, a new delivery.",
    "tested": "A test event was queued to this endpoint.",
}
DELIVERY_STATUSES: Final = ("pending", "succeeded", "failed", "cancelled")
viewer = require("console:view")
manager = require("webhooks:manage")


@router.get("/webhooks")
async def endpoints_page(request: Request, user: ConsoleUser = Depends(viewer)) -> Response:
    runtime = runtime_of(request)
    rows = await runtime.db.aread(lambda conn: service.list_endpoints(conn, user.account_id))
    return render(request, "webhooks.html", endpoints=[service.endpoint_view(r) for r in rows])


@router.get("/webhooks/{endpoint_id}")
async def endpoint_page(
    request: Request,
    endpoint_id: str,
    status: str | None = None,
    done: str | None = None,
    user: ConsoleUser = Depends(viewer),
) -> Response:
    return await _endpoint(request, user, endpoint_id, text_of(status), DONE.get(done or ""))


async def _endpoint(
    request: Request,
    user: ConsoleUser,
    endpoint_id: str,
    status: str | None,
    notice: str | None,
    new_secret: service.NewSecret | None = None,
) -> Response:
    if status not in (None, *DELIVERY_STATUSES):
        status = None
    runtime = runtime_of(request)

    def read(conn: sa.Connection) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        endpoint = service.get_endpoint(conn, user.account_id, endpoint_id)
        rows = service.list_deliveries(
            conn, user.account_id, endpoint_id, limit=PAGE_SIZE, status=status
        )
        excerpts = service.request_excerpts(conn, runtime.vault, [r["event_id"] for r in rows])
        return endpoint, rows, excerpts

    endpoint, rows, excerpts = await runtime.db.aread(read)
    return render(
        request,
        "webhook.html",
        endpoint=service.endpoint_view(endpoint),
        deliveries=rows,
        excerpts=excerpts,
        headers=service.DELIVERY_HEADERS,
        shown_status=status,
        statuses=DELIVERY_STATUSES,
        events=EVENT_TYPES,
        notice=notice,
        new_secret=new_secret,
        max_grace=int(service.MAX_GRACE_HOURS),
    )


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay")
async def replay(
    request: Request, endpoint_id: str, delivery_id: str, user: ConsoleUser = Depends(manager)
) -> Response:
    await _change(
        request, user, service.replay_delivery, endpoint_id=endpoint_id, delivery_id=delivery_id
    )
    return _back(endpoint_id, "replayed")


@router.post("/webhooks/{endpoint_id}/test")
async def send_test(
    request: Request,
    endpoint_id: str,
    event: Annotated[str, Form(max_length=40)] = "message.delivered",
    user: ConsoleUser = Depends(manager),
) -> Response:
    await _change(request, user, service.send_test_event, endpoint_id=endpoint_id, event_type=event)
    return _back(endpoint_id, "tested")


@router.post("/webhooks/{endpoint_id}/rotate-secret")
async def rotate_secret(
    request: Request,
    endpoint_id: str,
    grace_hours: Annotated[
        float, Form(ge=0, le=service.MAX_GRACE_HOURS)
    ] = service.DEFAULT_GRACE_HOURS,
    user: ConsoleUser = Depends(manager),
) -> Response:
    """A new secret, on the page this answer is and nowhere else (the page is not cached)."""
    new = await _change(
        request,
        user,
        service.rotate_endpoint_secret,
        endpoint_id=endpoint_id,
        grace=timedelta(hours=grace_hours),
    )
    return await _endpoint(request, user, endpoint_id, None, None, new_secret=new)


async def _change(
    request: Request, user: ConsoleUser, change: Callable[..., T], **fields: Any
) -> T:
    """One of the service's changes, in the user's account, as the user (audited so)."""
    runtime = runtime_of(request)
    who, now = actor(request, user.id), runtime.now()
    return await runtime.db.awrite(
        lambda conn: change(conn, runtime.vault, who, account_id=user.account_id, now=now, **fields)
    )


def _back(endpoint_id: str, done: str) -> Response:
    return RedirectResponse(f"{BASE}/webhooks/{endpoint_id}?done={done}", status_code=303)
