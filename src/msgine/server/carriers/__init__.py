"""Carrier connectors: the interface, the kinds the gateway can build, routes, and the adapters
that implement them (one module each)."""

from msgine.server.carriers._base import (
    Carrier,
    CarrierEvents,
    CarrierHealth,
    ConnectedCarrier,
    InboundMessage,
    Receipt,
    ReceiptStatus,
    SubmitRequest,
    SubmitResult,
)
from msgine.server.carriers._callbacks import (
    CallbackCarrier,
    CallbackContent,
    CallbackRefused,
    CallbackRequest,
    Callbacks,
    callback_url,
)
from msgine.server.carriers._health import status as carrier_status
from msgine.server.carriers._receive import receive as receive_callback
from msgine.server.carriers._registry import (
    SIMULATOR,
    BuildContext,
    CarrierKind,
    dedupes,
    get_kind,
    kind_names,
    register_kind,
)
from msgine.server.carriers._routing import (
    EMPTY_ROUTING,
    NoRoute,
    Plan,
    Routing,
    SendPricing,
    load_routing,
    price_for_send,
    price_send,
)
from msgine.server.carriers._sink import DurableEvents

__all__ = [
    "EMPTY_ROUTING",
    "SIMULATOR",
    "BuildContext",
    "CallbackCarrier",
    "CallbackContent",
    "CallbackRefused",
    "CallbackRequest",
    "Callbacks",
    "Carrier",
    "CarrierEvents",
    "CarrierHealth",
    "CarrierKind",
    "ConnectedCarrier",
    "DurableEvents",
    "InboundMessage",
    "NoRoute",
    "Plan",
    "Receipt",
    "ReceiptStatus",
    "Routing",
    "SendPricing",
    "SubmitRequest",
    "SubmitResult",
    "callback_url",
    "carrier_status",
    "dedupes",
    "get_kind",
    "kind_names",
    "load_routing",
    "price_for_send",
    "price_send",
    "receive_callback",
    "register_kind",
]
