"""The ``msgine`` carrier kind: MsGine's hosted API as an upstream (see docs/carriers-http.md)."""

from __future__ import annotations

from msgine.server.carriers._base import Carrier
from msgine.server.carriers._registry import BuildContext, CarrierKind
from msgine.server.carriers._throttle import throttle_of
from msgine.server.carriers.msgine_api._answers import (
    RECEIPT_STATES,
    RECIPIENT_ANSWERS,
    REQUEST_ANSWERS,
)
from msgine.server.carriers.msgine_api._callbacks import EVENTS_PATH, MsgineCallbacks
from msgine.server.carriers.msgine_api._carrier import (
    MsgineCredentials,
    MsgineOptions,
    MsgineUpstream,
)


def _build(ctx: BuildContext) -> Carrier:
    assert isinstance(ctx.options, MsgineOptions)
    assert isinstance(ctx.credentials, MsgineCredentials)
    return MsgineUpstream(
        ctx.name, ctx.options, ctx.credentials, ctx.runtime.vault, throttle=throttle_of(ctx)
    )


def kind() -> CarrierKind:
    return CarrierKind(
        name="msgine",
        options=MsgineOptions,
        credentials=MsgineCredentials,
        build=_build,
        callbacks=MsgineCallbacks(),
    )


__all__ = [
    "EVENTS_PATH",
    "RECEIPT_STATES",
    "RECIPIENT_ANSWERS",
    "REQUEST_ANSWERS",
    "MsgineCredentials",
    "MsgineOptions",
    "MsgineUpstream",
    "kind",
]
