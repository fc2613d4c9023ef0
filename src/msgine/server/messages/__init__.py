"""Messages: numbers, text, encodings and segments, the message lifecycle."""

from msgine.server.messages._latency import LatencyPoint, receipt_latency
from msgine.server.messages._numbers import mask_number
from msgine.server.messages._search import (
    MessageDetail,
    MessageFilter,
    MessagePage,
    MessageSummary,
    RecipientLine,
    RecipientTimeline,
    StatusStep,
    message_detail,
    search_messages,
)
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
    "LatencyPoint",
    "MessageDetail",
    "MessageFilter",
    "MessagePage",
    "MessageStatus",
    "MessageSummary",
    "RecipientLine",
    "RecipientTimeline",
    "StatusStep",
    "aggregate_status",
    "encoding_of",
    "gsm7_decode",
    "gsm7_encode",
    "mask_number",
    "message_detail",
    "receipt_latency",
    "recipient_counts",
    "recipient_phone",
    "search_messages",
    "split_segments",
]
