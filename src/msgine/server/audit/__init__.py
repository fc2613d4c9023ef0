"""The audit trail: hash-chained, append-only records of security-relevant actions."""

from msgine.server.audit._service import Actor, list_entries, record, verify

__all__ = ["Actor", "list_entries", "record", "verify"]
