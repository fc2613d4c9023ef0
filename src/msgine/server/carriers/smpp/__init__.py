"""The SMPP 3.4 carrier connector (kind ``smpp``)."""

from msgine.server.carriers.smpp._carrier import OutcomeUnknown, SmppCarrier
from msgine.server.carriers.smpp._options import SmppCredentials, SmppOptions
from msgine.server.carriers.smpp._receipts import RECEIPT_STATES, parse_receipt_text
from msgine.server.carriers.smpp._status import COMMAND_STATUSES, command_status

__all__ = [
    "COMMAND_STATUSES",
    "RECEIPT_STATES",
    "OutcomeUnknown",
    "SmppCarrier",
    "SmppCredentials",
    "SmppOptions",
    "command_status",
    "parse_receipt_text",
]
