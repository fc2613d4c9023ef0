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
from msgine.server.carriers._config import list_carriers, list_routes
from msgine.server.carriers._health import status as carrier_status
from msgine.server.carriers._registry import (
    SIMULATOR,
    BuildContext,
    CarrierKind,
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

__all__ = [
    "EMPTY_ROUTING",
    "SIMULATOR",
    "BuildContext",
    "Carrier",
    "CarrierEvents",
    "CarrierHealth",
    "CarrierKind",
    "ConnectedCarrier",
    "InboundMessage",
    "NoRoute",
    "Plan",
    "Receipt",
    "ReceiptStatus",
    "Routing",
    "SendPricing",
    "SubmitRequest",
    "SubmitResult",
    "carrier_status",
    "get_kind",
    "kind_names",
    "list_carriers",
    "list_routes",
    "load_routing",
    "price_for_send",
    "price_send",
    "register_kind",
]
