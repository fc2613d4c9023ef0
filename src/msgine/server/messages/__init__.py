"""Messages: numbers, text, encodings and segments, the message lifecycle."""

# The pure layers first: compliance imports numbers and text while the lifecycle below
# (which calls compliance) is still being imported.
from msgine.server.messages._latency import LatencyPoint, receipt_latency
from msgine.server.messages._numbers import mask_number, normalize_number, region_of, timezones_of
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
    sanitize,
    split_segments,
)
from msgine.server.messages._views import (
    MESSAGE_STATUSES,
    MessageStatus,
    aggregate_status,
    decrypt_phone,
    recipient_counts,
    recipient_phone,
)

# isort: split

from msgine.server.messages._lifecycle import (
    TERMINAL,
    Outgoing,
    StatusChange,
    load_outgoing,
    load_outgoings,
    note_history,
    recheck,
    record_status,
)
from msgine.server.messages._service import (
    SUBMIT_JOB,
    SendCommand,
    accept,
    accept_reply,
    build_command,
    get_message,
    list_messages,
    send_reads,
)

__all__ = [
    "MESSAGE_STATUSES",
    "SUBMIT_JOB",
    "TERMINAL",
    "Encoding",
    "LatencyPoint",
    "MessageDetail",
    "MessageFilter",
    "MessagePage",
    "MessageStatus",
    "MessageSummary",
    "Outgoing",
    "RecipientLine",
    "RecipientTimeline",
    "SendCommand",
    "StatusChange",
    "StatusStep",
    "accept",
    "accept_reply",
    "aggregate_status",
    "build_command",
    "decrypt_phone",
    "encoding_of",
    "get_message",
    "gsm7_decode",
    "gsm7_encode",
    "list_messages",
    "load_outgoing",
    "load_outgoings",
    "mask_number",
    "message_detail",
    "normalize_number",
    "note_history",
    "receipt_latency",
    "recheck",
    "recipient_counts",
    "recipient_phone",
    "record_status",
    "region_of",
    "sanitize",
    "search_messages",
    "send_reads",
    "split_segments",
    "timezones_of",
]
