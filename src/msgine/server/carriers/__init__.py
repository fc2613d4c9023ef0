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
from msgine.server.carriers._config import (
    add_carrier,
    add_route,
    get_carrier,
    get_route,
    list_carriers,
    list_routes,
    remove_carrier,
    remove_route,
    rotate_callback_token,
    update_carrier,
)
from msgine.server.carriers._fleet import Fleet
from msgine.server.carriers._health import publish, status, withdraw
from msgine.server.carriers._health import status as carrier_status
from msgine.server.carriers._metrics import observe_health, observe_submit
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
    current_routing,
    load_routing,
    price_for_send,
    price_send,
)
from msgine.server.carriers._sink import (
    DurableEvents,
    apply_early_receipts,
    purge_unclaimed_receipts,
)

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
    "Fleet",
    "InboundMessage",
    "NoRoute",
    "Plan",
    "Receipt",
    "ReceiptStatus",
    "Routing",
    "SendPricing",
    "SubmitRequest",
    "SubmitResult",
    "add_carrier",
    "add_route",
    "apply_early_receipts",
    "callback_url",
    "carrier_status",
    "current_routing",
    "dedupes",
    "get_carrier",
    "get_kind",
    "get_route",
    "kind_names",
    "list_carriers",
    "list_routes",
    "load_routing",
    "observe_health",
    "observe_submit",
    "price_for_send",
    "price_send",
    "publish",
    "purge_unclaimed_receipts",
    "receive_callback",
    "register_kind",
    "remove_carrier",
    "remove_route",
    "rotate_callback_token",
    "status",
    "update_carrier",
    "withdraw",
]
