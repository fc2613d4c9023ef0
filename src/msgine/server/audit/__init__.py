"""The audit trail: hash-chained, append-only records of security-relevant actions."""

from msgine.server.audit._anchor import (
    AnchorError,
    HeadPublisher,
    load_anchor,
    publish_heads,
    read_head,
)
from msgine.server.audit._chain import ChainAnchor
from msgine.server.audit._service import Actor, list_entries, record, verify, view

__all__ = [
    "Actor",
    "AnchorError",
    "ChainAnchor",
    "HeadPublisher",
    "list_entries",
    "load_anchor",
    "publish_heads",
    "read_head",
    "record",
    "verify",
    "view",
]
