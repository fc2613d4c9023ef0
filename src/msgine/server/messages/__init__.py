"""Messages: numbers, text, encodings and segments, the message lifecycle."""

from msgine.server.messages._views import (
    MESSAGE_STATUSES,
    MessageStatus,
    aggregate_status,
    recipient_counts,
)

__all__ = ["MESSAGE_STATUSES", "MessageStatus", "aggregate_status", "recipient_counts"]
