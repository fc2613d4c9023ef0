"""``/console/carriers``: each carrier's health as its workers last published it, and the
routes this account's messages take (its own, then the gateway-wide ones). Read-only:
carriers and routes are the operator's configuration (``msgine carriers``, ``msgine routes``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from msgine.server.carriers import carrier_status, list_routes

from ._web import ConsoleUser, render, require, runtime_of

router = APIRouter()


@router.get("/carriers")
async def carriers_page(
    request: Request, user: ConsoleUser = Depends(require("console:view"))
) -> Response:
    runtime = runtime_of(request)
    now, interval = runtime.now(), runtime.settings.carrier_health_interval

    def read(conn: sa.Connection) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return carrier_status(conn, now, interval), list_routes(conn, user.account_id)

    health, routes = await runtime.db.aread(read)
    return render(
        request,
        "carriers.html",
        health=health,
        carriers=sorted(health["carriers"].items()),
        routes=routes,
    )
