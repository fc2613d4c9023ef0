"""Carrier health across processes: workers publish, ``/readyz`` and the CLI read.

Binds live in worker processes, and the API (or ``msgine carriers status``) may run in another
process or on another machine, so each worker writes its carriers' health to the
``carrier_health`` table every ``MSGINE_CARRIER_HEALTH_INTERVAL`` seconds (one row per carrier
and worker). A row older than three intervals is stale: its worker stopped or cannot reach the
database. A carrier is as healthy as its best worker; a route is served while one of its
carriers is up or degraded, so a carrier that is down makes the gateway ``degraded``, and only a
route left with no serving carrier makes the carriers ``down``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from msgine.server.carriers._base import CarrierHealth
from msgine.server.carriers._routing import Routing, load_routing
from msgine.server.storage import carrier_health

_RANK = {"up": 3, "degraded": 2, "down": 1, "unknown": 0}
SERVING = frozenset({"up", "degraded"})


def publish(
    conn: sa.Connection,
    worker: str,
    healths: Sequence[tuple[str, CarrierHealth]],
    now: datetime,
) -> None:
    """Replace this worker's rows with its carriers' current health."""
    conn.execute(sa.delete(carrier_health).where(carrier_health.c.worker == worker))
    if healths:
        conn.execute(
            sa.insert(carrier_health),
            [
                {
                    "carrier": name,
                    "worker": worker,
                    "state": health.state,
                    "binds_up": health.binds_up,
                    "binds_wanted": health.binds_wanted,
                    "window_in_use": health.window_in_use,
                    "detail": (health.detail or "")[:200] or None,
                    "updated_at": now,
                }
                for name, health in healths
            ],
        )


def withdraw(conn: sa.Connection, worker: str) -> None:
    """A worker that stops takes its rows with it."""
    conn.execute(sa.delete(carrier_health).where(carrier_health.c.worker == worker))


def _carriers(
    conn: sa.Connection, routing: Routing, now: datetime, stale_after: timedelta
) -> dict[str, dict[str, Any]]:
    fresh = conn.execute(
        sa.select(carrier_health).where(carrier_health.c.updated_at > now - stale_after)
    ).mappings()
    out: dict[str, dict[str, Any]] = {
        name: {
            "kind": row.kind,
            "enabled": row.enabled,
            "state": "unknown",
            "workers": 0,
            "bindsUp": 0,
            "bindsWanted": 0,
            "windowInUse": 0,
            "detail": None,
        }
        for name, row in routing.carriers.items()
    }
    for row in fresh:
        item = out.get(row["carrier"])
        if item is None:
            continue
        item["workers"] += 1
        item["bindsUp"] += row["binds_up"]
        item["bindsWanted"] += row["binds_wanted"]
        item["windowInUse"] += row["window_in_use"]
        if _RANK[row["state"]] > _RANK[item["state"]]:
            item["state"], item["detail"] = row["state"], row["detail"]
    for item in out.values():
        if not item["enabled"]:
            item["state"] = "disabled"
    return out


def status(conn: sa.Connection, now: datetime, interval: float) -> dict[str, Any]:
    """Every carrier's state (best over fresh workers) and the gateway-wide summary."""
    routing = load_routing(conn)
    items = _carriers(conn, routing, now, timedelta(seconds=max(3 * interval, 10)))
    unserved = [
        route.id
        for route in routing.routes
        if not any(items.get(name, {}).get("state") in SERVING for name in route.carriers)
    ]
    used = {name for route in routing.routes for name in route.carriers}
    if unserved:
        state = "down"
    elif any(items[name]["state"] not in ("up", "disabled") for name in used if name in items):
        state = "degraded"
    else:
        state = "ok"
    return {"state": state, "carriers": items, "unservedRoutes": unserved}
