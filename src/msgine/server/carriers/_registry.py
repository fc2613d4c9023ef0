"""The kinds of carrier the gateway can build, in one place.

A kind is an options model (non-secret settings, stored as JSON), a credentials model (stored
envelope-encrypted, given to the connector decrypted in memory only) and a build function.
Connector modules are imported when a kind is first used, so a kind whose module (or optional
dependency) is missing fails with a clear message instead of breaking the gateway's start.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, SecretStr

from msgine.server.errors import InvalidRequest

if TYPE_CHECKING:
    from msgine.server.carriers._base import Carrier
    from msgine.server.carriers._callbacks import Callbacks
    from msgine.server.runtime import Runtime

#: The embedded carrier every test key uses; also the name of its built-in instance.
SIMULATOR = "simulator"


@dataclass(frozen=True)
class BuildContext:
    """What a build function gets: the instance's name, its validated models, the runtime,
    and for kinds with callbacks the base URL its provider calls (``_callbacks.py``)."""

    name: str
    options: BaseModel
    credentials: BaseModel | None = field(repr=False)
    runtime: Runtime
    callback_url: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CarrierKind:
    """One kind of carrier.

    ``real``: it reaches phones (the simulator does not), so a route through it lets live
    traffic out. ``idempotent``: a repeated submit with the same ``submit_key`` never sends
    twice (the carrier dedupes it), so a crash between submit and answer needs no policy; a
    connector whose options decide it says so in its own ``idempotent`` attribute instead.
    ``callbacks``: the kind receives receipts and inbound messages over HTTP (``_callbacks.py``);
    each of its carriers gets a callback token when it is added."""

    name: str
    options: type[BaseModel]
    credentials: type[BaseModel] | None
    build: Callable[[BuildContext], Carrier]
    real: bool = True
    idempotent: bool = False
    callbacks: Callbacks | None = None


def dedupes(carrier: Carrier, kind: CarrierKind) -> bool:
    """Whether a repeated submit to this connector never sends twice: its own ``idempotent``
    attribute where it has one (an HTTP upstream that batches cannot dedupe), else its kind's."""
    return bool(getattr(carrier, "idempotent", kind.idempotent))


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimulatorOptions(BaseModel):
    """The simulator has no settings of its own (its receipt delay is the gateway's)."""

    model_config = ConfigDict(extra="forbid")


def _simulator() -> CarrierKind:
    from msgine.server.carriers.simulator import SimulatorCarrier

    return CarrierKind(
        name=SIMULATOR,
        options=SimulatorOptions,
        credentials=None,
        build=lambda ctx: SimulatorCarrier(ctx.runtime, name=ctx.name),
        real=False,
        idempotent=True,
    )


def _smpp() -> CarrierKind:
    # Imported by name: the connector ships in its own module, with its own dependency.
    module: Any = importlib.import_module("msgine.server.carriers.smpp")

    def build(ctx: BuildContext) -> Carrier:
        from msgine.server.carriers._throttle import throttle_of

        carrier: Carrier = module.SmppCarrier(
            ctx.name, ctx.options, ctx.credentials, throttle=throttle_of(ctx)
        )
        return carrier

    return CarrierKind(
        name="smpp",
        options=module.SmppOptions,
        credentials=module.SmppCredentials,
        build=build,
    )


def _module_kind(module_name: str) -> Callable[[], CarrierKind]:
    """A kind whose module builds it (``kind()``): HTTP upstreams, one subpackage each."""

    def load() -> CarrierKind:
        module: Any = importlib.import_module(module_name)
        found: CarrierKind = module.kind()
        return found

    return load


_LOADERS: dict[str, Callable[[], CarrierKind]] = {
    SIMULATOR: _simulator,
    "smpp": _smpp,
    "msgine": _module_kind("msgine.server.carriers.msgine_api"),
    "africastalking": _module_kind("msgine.server.carriers.africastalking"),
    "twilio": _module_kind("msgine.server.carriers.twilio"),
}
_LOADED: dict[str, CarrierKind] = {}


def register_kind(name: str, loader: Callable[[], CarrierKind]) -> None:
    """Add (or replace) a kind. The gateway's own kinds are registered above."""
    _LOADERS[name] = loader
    _LOADED.pop(name, None)


def kind_names() -> list[str]:
    return sorted(_LOADERS)


def get_kind(name: str) -> CarrierKind:
    """The kind called ``name``, loading its module on first use."""
    found = _LOADED.get(name)
    if found is not None:
        return found
    loader = _LOADERS.get(name)
    if loader is None:
        raise InvalidRequest(
            f"Unknown carrier kind {name!r}.", details={"kinds": kind_names(), "field": "kind"}
        )
    try:
        found = loader()
    except ImportError as exc:
        raise InvalidRequest(
            f"Carrier kind {name!r} is not available in this installation ({exc.name}).",
            details={"field": "kind"},
        ) from None
    _LOADED[name] = found
    return found


def parse_options(kind: CarrierKind, values: dict[str, Any]) -> BaseModel:
    return _validate(kind.options, values, "options")


def parse_credentials(kind: CarrierKind, values: dict[str, Any] | None) -> BaseModel | None:
    if kind.credentials is None:
        if values:
            raise InvalidRequest(
                f"Carrier kind {kind.name!r} takes no credentials.",
                details={"field": "credentials"},
            )
        return None
    return _validate(kind.credentials, values or {}, "credentials")


def _validate(model: type[BaseModel], values: dict[str, Any], what: str) -> BaseModel:
    """Validate against a kind's model; the error names fields and problems, never values."""
    from pydantic import ValidationError

    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]}
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise InvalidRequest(f"Invalid carrier {what}.", details={"errors": problems}) from None


def dump_secret_model(model: BaseModel) -> dict[str, Any]:
    """A credentials model as plain JSON values, secrets revealed (to be encrypted at once)."""
    out: dict[str, Any] = {}
    for key, value in model:
        if value is None:  # an optional credential not given: not stored, not listed as set
            continue
        out[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return out
