"""The audit trail: hash-chained, append-only records of security-relevant actions."""

from msgine.server.audit._anchor import (
    AnchorError,
    HeadPublisher,
    load_anchor,
    publish_heads,
    read_head,
)
from msgine.server.audit._chain import ChainAnchor, ChainProblem
from msgine.server.audit._service import (
    Actor,
    ChainState,
    chain_state,
    list_entries,
    record,
    verify,
    view,
)

__all__ = [
    "Actor",
    "AnchorError",
    "ChainAnchor",
    "ChainProblem",
    "ChainState",
    "HeadPublisher",
    "chain_state",
    "list_entries",
    "load_anchor",
    "publish_heads",
    "read_head",
    "record",
    "verify",
    "view",
]
