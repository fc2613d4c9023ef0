"""The carrier connectors of one worker process, built from the stored configuration.

Connected carriers (SMPP binds, HTTP clients) are started once per process with the durable
events sink, and stopped at exit. The configuration is re-read whenever the worker routes live
traffic and on every health tick; a carrier whose row changed (its ``updated_at``) is stopped
and built again, a removed or disabled one is stopped. Test traffic uses the built-in
simulator and reads nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import datetime

from msgine.server._ids import random_base62
from msgine.server.carriers._base import Carrier, CarrierEvents, CarrierHealth, ConnectedCarrier
from msgine.server.carriers._callbacks import callback_url
from msgine.server.carriers._config import CarrierConfig, load_carrier_configs
from msgine.server.carriers._registry import (
    SIMULATOR,
    BuildContext,
    CarrierKind,
    get_kind,
    parse_credentials,
    parse_options,
)
from msgine.server.carriers._routing import Routing, load_routing
from msgine.server.logging import get_logger
from msgine.server.runtime import Runtime

log = get_logger("msgine.carriers")


def _callback_url(runtime: Runtime, config: CarrierConfig) -> str | None:
    if config.callback_token is None:
        return None
    return callback_url(runtime.settings.public_url, config.name, config.callback_token)


def worker_name() -> str:
    """This process's name in the health table: host, pid and a random tag."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{random_base62(4)}"


class Fleet:
    def __init__(self, runtime: Runtime, events: CarrierEvents, builtin: Carrier) -> None:
        self.runtime = runtime
        self.events = events
        #: The built-in simulator: test keys' carrier, and live traffic's on a staging box.
        self.builtin = builtin
        self.worker = worker_name()
        self.routing: Routing = Routing([], [])
        self._instances: dict[str, tuple[datetime, Carrier, CarrierKind]] = {}
        self._broken: dict[str, tuple[datetime, str]] = {}
        self._lock = asyncio.Lock()

    def get(self, name: str) -> Carrier | None:
        if name == SIMULATOR:
            return self.builtin
        found = self._instances.get(name)
        return None if found is None else found[1]

    def names(self) -> list[str]:
        """The carriers this process runs: the built-in simulator and every configured one."""
        return sorted({self.builtin.name, *self._instances})

    def kind(self, name: str) -> CarrierKind | None:
        if name == SIMULATOR:
            return get_kind(SIMULATOR)
        found = self._instances.get(name)
        return None if found is None else found[2]

    def is_down(self, name: str) -> str | None:
        """Why the carrier cannot take a submit now (not built, down), or None."""
        carrier = self.get(name)
        if carrier is None:
            broken = self._broken.get(name)
            return f"not available: {broken[1]}" if broken else "not available"
        if isinstance(carrier, ConnectedCarrier):
            health = carrier.health()
            if health.state == "down":
                return f"down: {health.detail}" if health.detail else "down"
        return None

    async def refresh(self) -> Routing:
        """Re-read routes and carriers; start, rebuild or stop connectors to match."""
        runtime = self.runtime
        routing = await runtime.db.aread(load_routing)
        self.routing = routing
        wanted = {
            name: row.updated_at
            for name, row in routing.carriers.items()
            if name != SIMULATOR and row.enabled and row.updated_at is not None
        }
        current = {name: item[0] for name, item in self._instances.items()}
        if wanted == current and not (set(wanted) & set(self._broken)):
            return routing
        async with self._lock:
            await self._reconcile(wanted)
        return routing

    async def _reconcile(self, wanted: dict[str, datetime]) -> None:
        for name in list(self._instances):
            if self._instances[name][0] != wanted.get(name):
                await self._stop(name)
        todo = [
            name
            for name, stamp in wanted.items()
            if name not in self._instances and self._broken.get(name, (None,))[0] != stamp
        ]
        if not todo:
            return
        runtime = self.runtime
        configs = await runtime.db.aread(lambda conn: load_carrier_configs(conn, runtime.vault))
        for config in configs:
            if config.name in todo:
                await self._start(config)

    async def _start(self, config: CarrierConfig) -> None:
        try:
            kind = get_kind(config.kind)
            context = BuildContext(
                name=config.name,
                options=parse_options(kind, config.options),
                credentials=parse_credentials(kind, config.credentials),
                runtime=self.runtime,
                callback_url=_callback_url(self.runtime, config),
            )
            carrier = kind.build(context)
            if isinstance(carrier, ConnectedCarrier):
                await carrier.start(self.events)
        except Exception as exc:  # one bad carrier must not stop the others
            reason = getattr(exc, "message", None) or type(exc).__name__
            log.error("carrier_start_failed", carrier=config.name, error_type=type(exc).__name__)
            self._broken[config.name] = (config.updated_at, str(reason)[:120])
            return
        self._broken.pop(config.name, None)
        self._instances[config.name] = (config.updated_at, carrier, kind)
        log.info("carrier_started", carrier=config.name, kind=config.kind)

    async def _stop(self, name: str) -> None:
        _stamp, carrier, _kind = self._instances.pop(name)
        if isinstance(carrier, ConnectedCarrier):
            try:
                await carrier.stop()
            except Exception as exc:
                log.error("carrier_stop_failed", carrier=name, error_type=type(exc).__name__)
        log.info("carrier_stopped", carrier=name)

    async def stop_all(self) -> None:
        async with self._lock:
            for name in list(self._instances):
                await self._stop(name)

    def health(self) -> list[tuple[str, CarrierHealth]]:
        """Every carrier this process serves, with its health (the simulator is always up)."""
        out = [(SIMULATOR, CarrierHealth(state="up"))]
        for name, (_stamp, carrier, _kind) in sorted(self._instances.items()):
            if isinstance(carrier, ConnectedCarrier):
                out.append((name, carrier.health()))
            else:
                out.append((name, CarrierHealth(state="up")))
        for name, (_stamp, reason) in sorted(self._broken.items()):
            out.append((name, CarrierHealth(state="down", detail=reason)))
        return out
