"""Messages: numbers, text, encodings and segments, the message lifecycle."""

from msgine.server.messages._text import (
    Encoding,
    encoding_of,
    gsm7_decode,
    gsm7_encode,
    split_segments,
)
from msgine.server.messages._views import (
    MESSAGE_STATUSES,
    MessageStatus,
    aggregate_status,
    recipient_counts,
    recipient_phone,
)

__all__ = [
    "MESSAGE_STATUSES",
    "Encoding",
    "MessageStatus",
    "aggregate_status",
    "encoding_of",
    "gsm7_decode",
    "gsm7_encode",
    "recipient_counts",
    "recipient_phone",
    "split_segments",
]
