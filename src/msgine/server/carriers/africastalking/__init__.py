"""The ``africastalking`` carrier kind: Africa's Talking's SMS API as an upstream (see
docs/carriers-http.md)."""

from __future__ import annotations

from msgine.server.carriers._base import Carrier
from msgine.server.carriers._registry import BuildContext, CarrierKind
from msgine.server.carriers._throttle import throttle_of
from msgine.server.carriers.africastalking._answers import (
    FAILURE_REASONS,
    RECEIPT_STATES,
    RECIPIENT_ANSWERS,
    REQUEST_ANSWERS,
)
from msgine.server.carriers.africastalking._callbacks import (
    INBOUND_PATH,
    RECEIPTS_PATH,
    AfricasTalkingCallbacks,
)
from msgine.server.carriers.africastalking._carrier import (
    SANDBOX_BASE_URL,
    AfricasTalkingCredentials,
    AfricasTalkingOptions,
    AfricasTalkingUpstream,
)


def _build(ctx: BuildContext) -> Carrier:
    assert isinstance(ctx.options, AfricasTalkingOptions)
    assert isinstance(ctx.credentials, AfricasTalkingCredentials)
    return AfricasTalkingUpstream(ctx.name, ctx.options, ctx.credentials, throttle=throttle_of(ctx))


def kind() -> CarrierKind:
    return CarrierKind(
        name="africastalking",
        options=AfricasTalkingOptions,
        credentials=AfricasTalkingCredentials,
        build=_build,
        callbacks=AfricasTalkingCallbacks(),
    )


__all__ = [
    "FAILURE_REASONS",
    "INBOUND_PATH",
    "RECEIPTS_PATH",
    "RECEIPT_STATES",
    "RECIPIENT_ANSWERS",
    "REQUEST_ANSWERS",
    "SANDBOX_BASE_URL",
    "AfricasTalkingCallbacks",
    "AfricasTalkingCredentials",
    "AfricasTalkingOptions",
    "AfricasTalkingUpstream",
    "kind",
]
