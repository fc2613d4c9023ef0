"""Which carriers take a recipient, and at what price.

A route matches a destination by prefix (E.164 digits) or by country. The most specific route
wins: an account's own route before the gateway-wide ones, then a prefix (the longest) before a
country. Only that route is used: a route whose carriers are all disabled or missing is no route
(falling through to a broader route would send traffic where the operator did not put it).

Test keys always go to the built-in simulator and never to a route's carriers. Live traffic
needs a route with a real carrier (one that reaches phones); the simulator serves it only where
the operator allowed it (``MSGINE_ALLOW_SIMULATOR_FOR_LIVE``, for a staging box).

Routes and carriers are small tables, read whole, so a change applies to the next message
without a restart. A live send (and a worker's batch of live recipients) checks only a stamp of
both tables (row counts and newest ``updated_at``) and reads them again when it moved: reading
and building them for every send cost about a millisecond, more than the rest of the routing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

import sqlalchemy as sa

from msgine.server.carriers._registry import SIMULATOR, get_kind
from msgine.server.errors import DomainError
from msgine.server.messages import region_of
from msgine.server.storage import carriers, routes

if TYPE_CHECKING:
    from msgine.server.runtime import Runtime
    from msgine.server.storage import Database


class NoRoute(DomainError):
    """A live send to a destination no real carrier's route covers."""

    code = "no_route"
    status = 400


@dataclass(frozen=True)
class RouteRow:
    id: str
    account_id: str | None
    prefix: str | None
    country: str | None
    carriers: tuple[str, ...]
    price_per_segment: int
    currency: str


@dataclass(frozen=True)
class CarrierRow:
    name: str
    kind: str
    enabled: bool
    real: bool
    on_uncertain_submit: str
    retry_budget: int
    updated_at: datetime | None


#: The built-in simulator as a carrier row: always there, never real.
BUILTIN_SIMULATOR = CarrierRow(SIMULATOR, SIMULATOR, True, False, "resubmit", 3, None)


@dataclass(frozen=True)
class Plan:
    """Where one recipient goes: carriers in failover order, the price per segment, and
    whether a live message is served by the simulator (staging)."""

    carriers: tuple[str, ...]
    price_per_segment: int
    currency: str
    route_id: str | None
    simulated_live: bool = False


class Routing:
    def __init__(self, route_rows: Sequence[RouteRow], carrier_rows: Sequence[CarrierRow]):
        self.routes = list(route_rows)
        self.carriers = {c.name: c for c in carrier_rows}
        self.carriers.setdefault(SIMULATOR, BUILTIN_SIMULATOR)

    def route_for(self, account_id: str, number: str, region: str | None) -> RouteRow | None:
        digits = number.removeprefix("+")
        best: tuple[tuple[int, int, int], RouteRow] | None = None
        for route in self.routes:
            if route.account_id not in (None, account_id):
                continue
            if route.prefix is not None and digits.startswith(route.prefix):
                score = (route.account_id is not None, 1, len(route.prefix))
            elif route.country is not None and route.country == region:
                score = (route.account_id is not None, 0, 0)
            else:
                continue
            rank = (int(score[0]), score[1], score[2])
            if best is None or rank > best[0]:
                best = (rank, route)
        return None if best is None else best[1]

    def usable(self, route: RouteRow) -> list[CarrierRow]:
        found = [self.carriers.get(name) for name in route.carriers]
        return [c for c in found if c is not None and c.enabled]

    def plan(
        self,
        *,
        account_id: str,
        mode: str,
        number: str,
        region: str | None,
        default_price: int,
        default_currency: str,
        allow_simulator_for_live: bool,
    ) -> Plan | None:
        """The recipient's carriers and price; None when a live recipient has no route."""
        if mode != "live":
            return Plan((SIMULATOR,), default_price, default_currency, None)
        route = self.route_for(account_id, number, region)
        usable = self.usable(route) if route is not None else []
        real = tuple(c.name for c in usable if c.real)
        if route is not None and real:
            return Plan(real, route.price_per_segment, route.currency, route.id)
        if not allow_simulator_for_live:
            return None
        simulated = tuple(c.name for c in usable) or (SIMULATOR,)
        if route is not None:
            return Plan(simulated, route.price_per_segment, route.currency, route.id, True)
        return Plan(simulated, default_price, default_currency, None, True)


def load_routing(conn: sa.Connection) -> Routing:
    route_rows = [
        RouteRow(
            id=r["id"],
            account_id=r["account_id"],
            prefix=r["prefix"],
            country=r["country"],
            carriers=tuple(r["carriers"]),
            price_per_segment=r["price_per_segment"],
            currency=r["currency"],
        )
        for r in conn.execute(sa.select(routes)).mappings()
    ]
    carrier_rows = [
        CarrierRow(
            name=r["name"],
            kind=r["kind"],
            enabled=r["enabled"],
            real=_is_real(r["kind"]),
            on_uncertain_submit=r["on_uncertain_submit"],
            retry_budget=r["retry_budget"],
            updated_at=r["updated_at"],
        )
        for r in conn.execute(sa.select(carriers)).mappings()
    ]
    return Routing(route_rows, carrier_rows)


#: What changes whenever a route or a carrier is added, removed or updated (an update sets
#: ``updated_at``; a removal lowers the count, an addition raises the newest ``updated_at``).
_STAMP = sa.select(
    *(
        sa.select(aggregate).select_from(table).scalar_subquery()
        for table in (routes, carriers)
        for aggregate in (sa.func.count(), sa.func.max(table.c.updated_at))
    )
)


class RoutingCache:
    """One database's routing, read whole again only when its stamp moved."""

    def __init__(self) -> None:
        self._last: tuple[tuple[object, ...], Routing] | None = None

    def load(self, conn: sa.Connection) -> Routing:
        stamp = tuple(conn.execute(_STAMP).one())
        last = self._last
        if last is not None and last[0] == stamp:
            return last[1]
        # Stamp first, tables second: a change in between only makes the next call read again.
        routing = load_routing(conn)
        self._last = (stamp, routing)
        return routing


_CACHES: WeakKeyDictionary[Database, RoutingCache] = WeakKeyDictionary()


async def current_routing(db: Database) -> Routing:
    """The routing now, from ``db``'s cache (a stamp read; the tables only after a change).
    Inline on SQLite (see ``Database.aread``): both reads are a few small rows."""
    cache = _CACHES.get(db)
    if cache is None:
        cache = _CACHES[db] = RoutingCache()
    return await db.aread(cache.load, point=True)


def _is_real(kind: str) -> bool:
    try:
        return get_kind(kind).real
    except DomainError:  # a kind this installation lacks reaches no phone from here
        return kind != SIMULATOR


@dataclass(frozen=True)
class SendPricing:
    """Each recipient's price per segment (in order), the message's currency, and what the
    response must say when the simulator serves live traffic."""

    prices: list[int]
    currency: str
    notice: dict[str, object]


SIMULATED_LIVE_WARNING = (
    "No real carrier route covers this destination: this live message is delivered by the "
    "simulator (MSGINE_ALLOW_SIMULATOR_FOR_LIVE is set) and reaches no phone."
)


def price_send(
    routing: Routing,
    *,
    account_id: str,
    mode: str,
    numbers: Sequence[str],
    regions: Sequence[str | None],
    default_price: int,
    default_currency: str,
    allow_simulator_for_live: bool,
) -> SendPricing:
    """Plan every recipient of a send; refuse the whole send (``no_route``, naming the
    countries, never a number) when a live recipient has no route."""
    plans = [
        routing.plan(
            account_id=account_id,
            mode=mode,
            number=number,
            region=region,
            default_price=default_price,
            default_currency=default_currency,
            allow_simulator_for_live=allow_simulator_for_live,
        )
        for number, region in zip(numbers, regions, strict=True)
    ]
    missing = sorted(
        {region or "unknown" for plan, region in zip(plans, regions, strict=True) if plan is None}
    )
    if missing:
        raise NoRoute(
            f"No carrier route covers {', '.join(missing)}: live messages to it cannot be sent.",
            details={"countries": missing},
        )
    found = [plan for plan in plans if plan is not None]
    currencies = sorted({plan.currency for plan in found})
    if len(currencies) > 1:
        raise NoRoute(
            "These recipients' routes are priced in different currencies; send them separately.",
            details={"currencies": currencies},
        )
    notice: dict[str, object] = {}
    if any(plan.simulated_live for plan in found):
        notice = {"carrier": SIMULATOR, "warnings": [SIMULATED_LIVE_WARNING]}
    return SendPricing(
        prices=[plan.price_per_segment for plan in found],
        currency=currencies[0] if currencies else default_currency,
        notice=notice,
    )


#: Routing with no routes and no configured carriers (test keys need none).
EMPTY_ROUTING = Routing([], [])


async def price_for_send(
    runtime: Runtime, account_id: str, mode: str, numbers: Sequence[str]
) -> SendPricing:
    """``price_send`` for a send request: live sends read the routes (test keys need none,
    the simulator serves them, so they skip the read)."""
    settings = runtime.settings
    routing = await current_routing(runtime.db) if mode == "live" else EMPTY_ROUTING
    return price_send(
        routing,
        account_id=account_id,
        mode=mode,
        numbers=numbers,
        regions=[region_of(number) for number in numbers],
        default_price=settings.price_per_segment,
        default_currency=settings.currency,
        allow_simulator_for_live=settings.allow_simulator_for_live,
    )
