"""Health, readiness, metrics and the published egress addresses."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from msgine.server import metrics
from msgine.server.api._deps import runtime_of
from msgine.server.api._openapi import answers
from msgine.server.api._schemas import EgressIps, Health, Readiness
from msgine.server.carriers import carrier_status
from msgine.server.logging import get_logger
from msgine.server.storage import WriteProbe

log = get_logger("msgine.metrics")
router = APIRouter(tags=["operations"])
api_router = APIRouter(tags=["meta"])


@router.get("/healthz", **answers(Health, authenticated=False))
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. No dependency is checked here on purpose."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    **answers(Readiness, authenticated=False),
    openapi_extra={
        "responses": {
            "503": {
                "description": "the database is unavailable or cannot take writes",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}
                },
            }
        }
    },
)
async def readyz(request: Request) -> Response:
    """Ready when the database answers and takes writes (a full disk or a read-only database
    fails every send, though reads still work); Redis and carriers only degrade."""
    runtime = runtime_of(request)
    try:
        await runtime.db.aread(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "error"}, status_code=503)
    state = request.app.state
    if getattr(state, "write_probe", None) is None:
        state.write_probe = WriteProbe(runtime.db)
    if not await state.write_probe.writable(runtime.now()):
        return JSONResponse({"status": "unavailable", "database": "unwritable"}, status_code=503)
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


@router.get(
    "/metrics",
    **answers(None, authenticated=False, description="Prometheus text exposition format"),
)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text. The queue gauges are read now, with bounded statements; if the
    database does not answer, the last values stay and the rest is still served."""
    runtime = runtime_of(request)
    now = runtime.now()
    try:
        snapshot = await runtime.db.aread(lambda conn: metrics.queue_snapshot(conn, now))
    except Exception as exc:
        log.warning("metrics_queue_read_failed", error_type=type(exc).__name__)
    else:
        metrics.refresh_queues(snapshot)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@api_router.get("/meta/ips", **answers(EgressIps, authenticated=False))
async def egress_ips(request: Request) -> dict[str, list[str]]:
    """The addresses webhooks come from, so receivers can allow-list them."""
    return {"ips": runtime_of(request).settings.egress_ip_list}
