"""The ``twilio`` carrier kind: Twilio's Programmable Messaging API as an upstream (see
docs/carriers-http.md)."""

from __future__ import annotations

from msgine.server.carriers._base import Carrier
from msgine.server.carriers._registry import BuildContext, CarrierKind
from msgine.server.carriers._throttle import throttle_of
from msgine.server.carriers.twilio._answers import ANSWERS, DELIVERY_ERRORS, RECEIPT_STATES
from msgine.server.carriers.twilio._callbacks import (
    EMPTY_TWIML,
    INBOUND_PATH,
    RECEIPTS_PATH,
    TwilioCallbacks,
)
from msgine.server.carriers.twilio._carrier import (
    TwilioCredentials,
    TwilioOptions,
    TwilioUpstream,
)
from msgine.server.carriers.twilio._signature import signature, verify


def _build(ctx: BuildContext) -> Carrier:
    assert isinstance(ctx.options, TwilioOptions)
    assert isinstance(ctx.credentials, TwilioCredentials)
    receipts = f"{ctx.callback_url}/{RECEIPTS_PATH}" if ctx.callback_url else None
    return TwilioUpstream(
        ctx.name, ctx.options, ctx.credentials, status_callback=receipts, throttle=throttle_of(ctx)
    )


def kind() -> CarrierKind:
    return CarrierKind(
        name="twilio",
        options=TwilioOptions,
        credentials=TwilioCredentials,
        build=_build,
        callbacks=TwilioCallbacks(),
    )


__all__ = [
    "ANSWERS",
    "DELIVERY_ERRORS",
    "EMPTY_TWIML",
    "INBOUND_PATH",
    "RECEIPTS_PATH",
    "RECEIPT_STATES",
    "TwilioCallbacks",
    "TwilioCredentials",
    "TwilioOptions",
    "TwilioUpstream",
    "kind",
    "signature",
    "verify",
]
