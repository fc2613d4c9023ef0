"""Carriers and routes as configuration: validation, encrypted credentials, audit, routing."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from carriers_helpers import KE, TOKEN, UG, Operator

from msgine.server.carriers import SIMULATOR, Routing
from msgine.server.carriers._config import (
    get_carrier,
    list_carriers,
    load_carrier_configs,
    remove_carrier,
    remove_route,
)
from msgine.server.carriers._routing import CarrierRow, RouteRow
from msgine.server.errors import InvalidRequest, NotFound
from msgine.server.storage._tables import audit_log, carriers


def _raw_carrier_rows(runtime: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in runtime.db.read(lambda c: c.execute(sa.select(carriers)).mappings())]


def test_credentials_are_encrypted_at_rest_and_never_in_a_view(operator: Operator) -> None:
    view = operator.add_carrier("mtn")
    runtime = operator.runtime
    assert view["credentials"] == {"set": True, "fields": ["token"]}
    assert TOKEN not in repr(view)
    [row] = _raw_carrier_rows(runtime)
    assert TOKEN.encode() not in row["credentials"]  # ciphertext, not the value
    assert TOKEN not in repr(row["options"])
    listed = runtime.db.read(lambda c: list_carriers(c, runtime.vault))
    shown = runtime.db.read(lambda c: get_carrier(c, runtime.vault, "mtn"))
    assert TOKEN not in repr(listed) + repr(shown)
    # The worker gets them decrypted, in memory only, and their repr hides them.
    [config] = runtime.db.read(lambda c: load_carrier_configs(c, runtime.vault))
    assert config.credentials == {"token": TOKEN}
    assert TOKEN not in repr(config)


def test_ciphertext_moved_to_another_carrier_does_not_decrypt(operator: Operator) -> None:
    from msgine.server.crypto import DecryptionError

    operator.add_carrier("one")
    operator.add_carrier("two")
    runtime = operator.runtime
    rows = {r["name"]: r for r in _raw_carrier_rows(runtime)}
    runtime.db.write(
        lambda c: c.execute(
            sa.update(carriers)
            .where(carriers.c.name == "two")
            .values(credentials=rows["one"]["credentials"])
        )
    )
    with pytest.raises(DecryptionError):
        runtime.db.read(lambda c: load_carrier_configs(c, runtime.vault))


def test_bad_settings_are_refused_naming_the_field_not_the_value(operator: Operator) -> None:
    with pytest.raises(InvalidRequest) as bad_option:
        operator.add_carrier("x", behaviour="sometimes")
    assert bad_option.value.details["errors"][0]["field"] == "behaviour"
    assert "sometimes" not in repr(bad_option.value.details)
    with pytest.raises(InvalidRequest):
        operator.add_carrier("Bad Name")
    with pytest.raises(InvalidRequest):
        operator.add_carrier(SIMULATOR)
    with pytest.raises(InvalidRequest):
        operator.add_carrier("y", on_uncertain_submit="maybe")
    operator.add_carrier("ok")
    with pytest.raises(InvalidRequest):
        operator.add_carrier("ok")  # names are unique


def test_every_change_is_audited_without_secrets(operator: Operator) -> None:
    runtime = operator.runtime
    operator.add_carrier("mtn")
    operator.update_carrier("mtn", credentials={"token": TOKEN + "-new"}, retry_budget=5)
    route = operator.add_route(["mtn"])
    now = runtime.now()
    with pytest.raises(InvalidRequest):  # a route still uses it
        runtime.db.write(
            lambda c: remove_carrier(c, runtime.vault, "mtn", now=now, actor=operator.actor)
        )
    runtime.db.write(
        lambda c: remove_route(c, runtime.vault, route["id"], now=now, actor=operator.actor)
    )
    runtime.db.write(
        lambda c: remove_carrier(c, runtime.vault, "mtn", now=now, actor=operator.actor)
    )
    entries = runtime.db.read(
        lambda c: c.execute(sa.select(audit_log).order_by(audit_log.c.seq)).mappings().all()
    )
    actions = [e["action"] for e in entries]
    assert actions == [
        "carrier.created",
        "carrier.updated",
        "route.created",
        "route.removed",
        "carrier.removed",
    ]
    assert all(e["actor"] == "cli:test" for e in entries)
    assert entries[1]["details"]["changed"] == ["credentials", "retry_budget"]
    assert TOKEN not in repr([dict(e) for e in entries])


def test_update_merges_options_and_replaces_credentials(operator: Operator) -> None:
    runtime = operator.runtime
    operator.add_carrier("mtn", detail="first")
    view = operator.update_carrier("mtn", options={"behaviour": "retry"})
    assert view["options"]["behaviour"] == "retry"
    assert view["options"]["detail"] == "first"
    operator.update_carrier("mtn", credentials={"token": "other-token"})
    [config] = runtime.db.read(lambda c: load_carrier_configs(c, runtime.vault))
    assert config.credentials == {"token": "other-token"}
    with pytest.raises(NotFound):
        operator.update_carrier("nope", enabled=False)


def test_routes_validate_their_destination_and_carriers(operator: Operator) -> None:
    operator.add_carrier("mtn")
    with pytest.raises(InvalidRequest):
        operator.add_route(["mtn"], prefix="256", country="UG")  # both
    with pytest.raises(InvalidRequest):
        operator.add_route(["mtn"], prefix="25x")
    with pytest.raises(InvalidRequest):
        operator.add_route(["mtn"], country="XX")
    with pytest.raises(NotFound):
        operator.add_route(["mtn", "ghost"])
    with pytest.raises(InvalidRequest):
        operator.add_route(["mtn", "mtn"])
    view = operator.add_route(["mtn"], prefix="+25670")
    assert view["prefix"] == "25670"
    with pytest.raises(InvalidRequest):
        operator.add_route(["mtn"], prefix="25670")  # one route per destination and scope


def _routing(*routes: RouteRow) -> Routing:
    rows = [
        CarrierRow(name, "stub", name != "off", True, "mark_unknown", 3, None)
        for name in ("a", "b", "c", "off")
    ]
    return Routing(list(routes), rows)


def _route(rid: str, *, prefix: str | None = None, country: str | None = None, **kw: Any) -> Any:
    return RouteRow(
        id=rid,
        account_id=kw.get("account"),
        prefix=prefix,
        country=country,
        carriers=tuple(kw.get("carriers", ("a",))),
        price_per_segment=kw.get("price", 10),
        currency="UGX",
    )


def test_the_most_specific_route_wins() -> None:
    routing = _routing(
        _route("country", country="UG"),
        _route("short", prefix="256"),
        _route("long", prefix="25670"),
        _route("mine", country="UG", account="acc_1"),
    )
    assert routing.route_for("acc_2", UG, "UG").id == "long"  # type: ignore[union-attr]
    assert routing.route_for("acc_2", "+256311234567", "UG").id == "short"  # type: ignore[union-attr]
    assert routing.route_for("acc_1", UG, "UG").id == "mine"  # type: ignore[union-attr]
    assert routing.route_for("acc_2", KE, "KE") is None


def _plan(routing: Routing, mode: str, number: str = UG, allow: bool = False) -> Any:
    return routing.plan(
        account_id="acc",
        mode=mode,
        number=number,
        region="UG" if number == UG else "KE",
        default_price=30,
        default_currency="UGX",
        allow_simulator_for_live=allow,
    )


def test_test_traffic_always_plans_the_simulator_and_live_needs_a_real_route() -> None:
    routing = _routing(_route("r", country="UG", carriers=("off", "a", "b"), price=40))
    assert _plan(routing, "test").carriers == (SIMULATOR,)
    live = _plan(routing, "live")
    assert (live.carriers, live.price_per_segment, live.simulated_live) == (("a", "b"), 40, False)
    assert _plan(routing, "live", KE) is None
    staged = _plan(routing, "live", KE, allow=True)
    assert (staged.carriers, staged.simulated_live) == ((SIMULATOR,), True)
    only_disabled = _routing(_route("r", country="UG", carriers=("off",)))
    assert _plan(only_disabled, "live") is None


async def test_the_routing_cache_follows_every_change_and_rereads_only_then(
    operator: Operator,
) -> None:
    from msgine.server.carriers import current_routing

    db = operator.runtime.db
    assert (await current_routing(db)).routes == []
    operator.add_carrier("mtn")
    route = operator.add_route(["mtn"])
    first = await current_routing(db)
    assert [r.id for r in first.routes] == [route["id"]]
    assert await current_routing(db) is first  # nothing changed: no second read of the tables
    operator.update_carrier("mtn", enabled=False)
    assert _plan(await current_routing(db), "live") is None
    operator.update_carrier("mtn", enabled=True)
    assert _plan(await current_routing(db), "live").carriers == ("mtn",)
    operator.runtime.db.write(
        lambda c: remove_route(
            c, operator.runtime.vault, route["id"], now=operator.runtime.now(), actor=operator.actor
        )
    )
    assert (await current_routing(db)).routes == []
