"""Routes: message analytics on the paths MsGine's official SDKs call (scope
``messages:read``, as MsGine's own analytics need READ_MESSAGES); the key's account and mode
only. The numbers come from ``msgine.server.analytics``, which the console shares."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import JSONResponse

from msgine.server.analytics import DEFAULT_DAYS, Analytics
from msgine.server.api._deps import require, runtime_of
from msgine.server.api._openapi import answers
from msgine.server.api._responses import JSONBody
from msgine.server.api._schemas import AnalyticsDaily, AnalyticsOverview
from msgine.server.keys import Principal

router = APIRouter(tags=["analytics"])
can_read = require("messages:read")


def _day(name: str) -> Any:
    return Query(
        alias=name, max_length=40, description="A date (YYYY-MM-DD) or an ISO 8601 date and time"
    )


@router.get(
    "/developers/analytics/overview",
    operation_id="analytics_overview",
    summary="Sent, delivered, failed and cost over a period of UTC days",
    **answers(AnalyticsOverview),
)
async def overview(
    request: Request,
    principal: Annotated[Principal, Depends(can_read)],
    start: Annotated[str | None, _day("from")] = None,
    end: Annotated[str | None, _day("to")] = None,
) -> JSONResponse:
    """``from`` and ``to`` are both included; by default the 30 days up to today."""
    report = await Analytics(runtime_of(request)).overview(
        principal.account_id, principal.mode, start=start, end=end
    )
    return JSONBody(report.as_json())


@router.get(
    "/developers/analytics/daily",
    operation_id="analytics_daily",
    summary="Each of the last N UTC days, today included, oldest first",
    **answers(AnalyticsDaily),
)
async def daily(
    request: Request,
    principal: Annotated[Principal, Depends(can_read)],
    days: Annotated[int, Query(ge=1, le=90)] = DEFAULT_DAYS,
) -> JSONResponse:
    # Rendered by pydantic-core: FastAPI's encoder walked the 90 days' dicts for several ms.
    report = await Analytics(runtime_of(request)).daily(
        principal.account_id, principal.mode, days=days
    )
    return JSONBody(report.as_json())
