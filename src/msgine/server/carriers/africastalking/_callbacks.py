"""Africa's Talking's callbacks to our routes: delivery reports (``.../receipts``) and incoming
messages (``.../inbound``), form-encoded POSTs set in AT's dashboard.

AT signs nothing. What authenticates a request is the unguessable token in the callback path
(checked by the service before this module runs), and, when the carrier lists them, AT's
source addresses (``callback_sources``). The replay key is a digest of the raw body: AT's
own retry of a report we already stored, or a captured request sent again, within the replay
window is refused; a redelivered report changes nothing in any case (a recipient's status
moves once).
"""

from __future__ import annotations

import hashlib
from ipaddress import ip_address

from msgine.server.carriers._callbacks import (
    CallbackCarrier,
    CallbackContent,
    CallbackRefused,
    CallbackRequest,
)
from msgine.server.carriers._forms import (
    FormNames,
    ReceiptTables,
    form_fields,
    form_inbound,
    form_receipt,
)
from msgine.server.carriers.africastalking._answers import (
    FAILURE_REASONS,
    RECEIPT_STATES,
    UNKNOWN_FAILURE,
)
from msgine.server.carriers.africastalking._carrier import AfricasTalkingOptions

RECEIPTS_PATH = "receipts"
INBOUND_PATH = "inbound"
_PATHS = (RECEIPTS_PATH, INBOUND_PATH)
#: Where AT's callbacks put what we read.
NAMES = FormNames(
    message_id="id",
    state="status",
    error="failureReason",
    recipient="phoneNumber",
    sender="from",
    texted="to",
    text="text",
)
TABLES = ReceiptTables(RECEIPT_STATES, FAILURE_REASONS, UNKNOWN_FAILURE)


class AfricasTalkingCallbacks:
    def authenticate(self, request: CallbackRequest, carrier: CallbackCarrier) -> str | None:
        if request.what not in _PATHS:
            raise CallbackRefused("unknown_path")
        options = carrier.options
        assert isinstance(options, AfricasTalkingOptions)
        if options.callback_sources and not _allowed(request.client_ip, options):
            raise CallbackRefused("source_not_allowed")
        return f"{request.what}:{hashlib.sha256(request.body).hexdigest()}"

    def parse(self, request: CallbackRequest, carrier: CallbackCarrier) -> CallbackContent:
        fields = form_fields(request.body)
        if request.what == INBOUND_PATH:
            return CallbackContent(inbound=[form_inbound(fields, NAMES)])
        return CallbackContent(receipts=[form_receipt(fields, NAMES, TABLES)])


def _allowed(client_ip: str | None, options: AfricasTalkingOptions) -> bool:
    try:
        address = ip_address(client_ip or "")
    except ValueError:
        return False
    return any(address in network for network in options.callback_sources)
