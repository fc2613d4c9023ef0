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

from msgine.server.carriers._base import InboundMessage, Receipt, ReceiptStatus
from msgine.server.carriers._callbacks import (
    CallbackCarrier,
    CallbackContent,
    CallbackRefused,
    CallbackRequest,
)
from msgine.server.carriers._forms import form_fields, required, status_word
from msgine.server.carriers.africastalking._answers import (
    FAILURE_REASONS,
    RECEIPT_STATES,
    UNKNOWN_FAILURE,
)
from msgine.server.carriers.africastalking._carrier import AfricasTalkingOptions

RECEIPTS_PATH = "receipts"
INBOUND_PATH = "inbound"
_PATHS = (RECEIPTS_PATH, INBOUND_PATH)


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
            return CallbackContent(inbound=[_inbound(fields)])
        return CallbackContent(receipts=[_receipt(fields)])


def _allowed(client_ip: str | None, options: AfricasTalkingOptions) -> bool:
    try:
        address = ip_address(client_ip or "")
    except ValueError:
        return False
    return any(address in network for network in options.callback_sources)


def _receipt(fields: dict[str, str]) -> Receipt:
    state = status_word(required(fields, "status"))
    status: ReceiptStatus = RECEIPT_STATES.get(state, "unknown")
    error_code, opted_out = None, False
    if status == "failed":
        reason = status_word(fields.get("failureReason", "")) or state
        error_code, opted_out = FAILURE_REASONS.get(reason, UNKNOWN_FAILURE)
    return Receipt(
        carrier_message_id=required(fields, "id")[:64],
        status=status,
        carrier_state=state or "unknown",
        error_code=error_code,
        to=fields.get("phoneNumber") or None,
        opted_out=opted_out,
    )


def _inbound(fields: dict[str, str]) -> InboundMessage:
    return InboundMessage(
        sender=required(fields, "from"),
        to=fields.get("to") or None,
        text=fields.get("text", ""),
        carrier_message_id=(fields.get("id") or "")[:64] or None,
    )
