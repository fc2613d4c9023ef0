"""Carrier connectors: the interface and the built-in simulator."""

from msgine.server.carriers._base import Carrier, SubmitRequest, SubmitResult

__all__ = ["Carrier", "SubmitRequest", "SubmitResult"]
