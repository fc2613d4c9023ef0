"""Health, readiness, metrics and the published egress addresses."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from msgine.server.api._deps import runtime_of
from msgine.server.carriers import carrier_status

router = APIRouter(tags=["operations"])
api_router = APIRouter(tags=["meta"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. No dependency is checked here on purpose."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is unavailable"}})
async def readyz(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        await runtime.db.aread(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "error"}, status_code=503)
    limiter = getattr(request.app.state, "rate_limiter", None)
    redis = "not configured"
    if limiter is not None and runtime.settings.redis_url is not None:
        # Redis being down degrades rate limits to per-process counts; the gateway still serves.
        redis = "ok" if await limiter.healthy() else "degraded"
    # Each carrier's state as its workers last published it. A carrier down while its routes'
    # other carriers serve is degraded service, not an outage, and even a route with none left
    # is not: the API still accepts and queues (readiness stays 200; 503 is for the database).
    now = runtime.now()
    interval = runtime.settings.carrier_health_interval
    carriers = await runtime.db.aread(lambda conn: carrier_status(conn, now, interval))
    status = "ready" if carriers["state"] == "ok" else "degraded"
    return JSONResponse({"status": status, "database": "ok", "redis": redis, "carriers": carriers})


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@api_router.get("/meta/ips")
async def egress_ips(request: Request) -> dict[str, list[str]]:
    """The addresses webhooks come from, so receivers can allow-list them."""
    return {"ips": runtime_of(request).settings.egress_ip_list}
