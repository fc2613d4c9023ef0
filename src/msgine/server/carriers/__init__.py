"""Carrier connectors: the interface, and the adapters that implement it (one module each)."""

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

__all__ = [
    "Carrier",
    "CarrierEvents",
    "CarrierHealth",
    "ConnectedCarrier",
    "InboundMessage",
    "Receipt",
    "ReceiptStatus",
    "SubmitRequest",
    "SubmitResult",
]
