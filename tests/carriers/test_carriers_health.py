"""Carrier health across processes: published by workers, read by /readyz and the CLI."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from carriers_helpers import Operator

from msgine.server.carriers import carrier_status
from msgine.server.storage._tables import carrier_health
from msgine.server.worker import Worker, publish_health


def _status(runtime: Any) -> dict[str, Any]:
    now = runtime.now()
    interval = runtime.settings.carrier_health_interval
    return dict(runtime.db.read(lambda c: carrier_status(c, now, interval)))


async def test_a_carrier_down_while_its_route_has_another_is_degraded_not_down(
    api: Any, operator: Operator
) -> None:
    operator.add_carrier("first", down=True)
    operator.add_carrier("second")
    operator.add_route(["first", "second"])
    await publish_health(api.worker)
    found = _status(api.runtime)
    assert found["carriers"]["first"]["state"] == "down"
    assert found["carriers"]["first"]["detail"] == "bind refused"
    assert (found["carriers"]["second"]["state"], found["carriers"]["second"]["bindsUp"]) == (
        "up",
        1,
    )
    assert found["state"] == "degraded"
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["carriers"]["state"] == "degraded"
    metrics = (await api.client.get("/metrics")).text
    assert 'msgine_carrier_binds_up{carrier="second"} 1.0' in metrics
    assert 'msgine_carrier_up{carrier="first"} 0.0' in metrics
    await api.worker.fleet.stop_all()


async def test_a_route_with_no_serving_carrier_is_down(api: Any, operator: Operator) -> None:
    operator.add_carrier("only", down=True)
    route = operator.add_route(["only"])
    await publish_health(api.worker)
    found = _status(api.runtime)
    assert (found["state"], found["unservedRoutes"]) == ("down", [route["id"]])
    operator.update_carrier("only", options={"down": False})  # rebuilt on the next tick
    await publish_health(api.worker)
    assert _status(api.runtime)["state"] == "ok"
    await api.worker.fleet.stop_all()


async def test_the_best_fresh_worker_counts_and_stale_ones_do_not(
    api: Any, operator: Operator, clock: Any
) -> None:
    operator.add_carrier("mtn", down=True)
    operator.add_route(["mtn"])
    other = Worker(api.runtime)
    await publish_health(api.worker)
    api.runtime.db.write(  # another worker whose binds are up
        lambda c: c.execute(
            sa.insert(carrier_health).values(
                carrier="mtn",
                worker="other:1",
                state="up",
                binds_up=2,
                binds_wanted=2,
                window_in_use=3,
                updated_at=api.runtime.now(),
            )
        )
    )
    found = _status(api.runtime)["carriers"]["mtn"]
    assert (found["state"], found["workers"], found["bindsUp"], found["windowInUse"]) == (
        "up",
        2,
        2,
        3,
    )
    clock.advance(seconds=60)  # both stop publishing
    assert _status(api.runtime)["carriers"]["mtn"]["state"] == "unknown"
    await api.worker.fleet.stop_all()
    await other.fleet.stop_all()


async def test_the_worker_starts_connected_carriers_once_and_stops_them(
    api: Any, operator: Operator
) -> None:
    operator.add_carrier("mtn")
    await api.worker.fleet.refresh()
    first = api.worker.fleet.get("mtn")
    assert first.events is not None  # started with the events sink
    await api.worker.fleet.refresh()
    assert api.worker.fleet.get("mtn") is first  # not rebuilt while unchanged
    operator.update_carrier("mtn", enabled=False)
    await api.worker.fleet.refresh()
    assert first.stopped
    assert api.worker.fleet.get("mtn") is None


async def test_receipts_no_submit_claims_are_purged_after_a_week(api: Any, clock: Any) -> None:
    from msgine.server.carriers import Receipt
    from msgine.server.carriers._sink import apply_receipt, purge_unclaimed_receipts
    from msgine.server.storage._tables import carrier_receipts

    runtime = api.runtime
    receipt = Receipt("never-ours", "delivered", "DELIVRD")
    runtime.db.write(lambda c: apply_receipt(c, runtime.vault, "mtn", receipt, runtime.now()))
    count = sa.select(sa.func.count()).select_from(carrier_receipts)
    assert runtime.db.write(lambda c: purge_unclaimed_receipts(c, runtime.now())) == 0
    clock.advance(days=8)
    assert runtime.db.write(lambda c: purge_unclaimed_receipts(c, runtime.now())) == 1
    assert runtime.db.read(lambda c: c.execute(count).scalar()) == 0
