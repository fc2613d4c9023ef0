"""Twilio's callbacks to our routes: status callbacks (``.../receipts``, sent as each message's
``StatusCallback``) and incoming messages (``.../inbound``, set as the number's or Messaging
Service's incoming-message webhook), form-encoded and signed.

A request passes only with a valid ``X-Twilio-Signature`` over the URL Twilio called (the
gateway's public URL, ``MSGINE_PUBLIC_URL``, behind a proxy) and the form, by the carrier's
Auth Token (or the previous one during a rotation). The signature is the replay key: Twilio
signs a callback the same way every time it sends it, so a captured request sent again, or a
retry of one already stored, within the replay window is refused.
"""

from __future__ import annotations

from msgine.server.carriers._base import InboundMessage, Receipt, ReceiptStatus
from msgine.server.carriers._callbacks import (
    CallbackCarrier,
    CallbackContent,
    CallbackRefused,
    CallbackRequest,
)
from msgine.server.carriers._forms import (
    MalformedForm,
    form_fields,
    form_pairs,
    required,
    status_word,
)
from msgine.server.carriers.twilio._answers import (
    DELIVERY_ERRORS,
    RECEIPT_STATES,
    UNKNOWN_DELIVERY_ERROR,
)
from msgine.server.carriers.twilio._carrier import TwilioCredentials
from msgine.server.carriers.twilio._signature import verify

RECEIPTS_PATH = "receipts"
INBOUND_PATH = "inbound"
_PATHS = (RECEIPTS_PATH, INBOUND_PATH)
#: The answer to an incoming message: TwiML that does nothing (replies go out as messages of
#: their own, through the route, like any other).
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class TwilioCallbacks:
    def authenticate(self, request: CallbackRequest, carrier: CallbackCarrier) -> str | None:
        if request.what not in _PATHS:
            raise CallbackRefused("unknown_path")
        credentials = carrier.credentials
        if not isinstance(credentials, TwilioCredentials):
            raise CallbackRefused("no_credentials")
        presented = request.headers.get("x-twilio-signature", "").strip()
        if not presented:
            raise CallbackRefused("unsigned")
        try:
            params = form_pairs(request.body)
        except MalformedForm:
            raise CallbackRefused("malformed") from None
        if not verify(credentials.signing_tokens(), request.url, params, presented):
            raise CallbackRefused("bad_signature")
        return f"{request.what}:{presented}"

    def parse(self, request: CallbackRequest, carrier: CallbackCarrier) -> CallbackContent:
        fields = form_fields(request.body)
        if request.what == INBOUND_PATH:
            return CallbackContent(
                inbound=[_inbound(fields)], answer=EMPTY_TWIML, content_type="text/xml"
            )
        return CallbackContent(receipts=[_receipt(fields)])


def _receipt(fields: dict[str, str]) -> Receipt:
    state = status_word(required(fields, "MessageStatus"))
    status: ReceiptStatus = RECEIPT_STATES.get(state, "unknown")
    error_code, opted_out = None, False
    if status == "failed":
        code = fields.get("ErrorCode", "").strip()
        error_code, opted_out = DELIVERY_ERRORS.get(code, UNKNOWN_DELIVERY_ERROR)
    return Receipt(
        carrier_message_id=required(fields, "MessageSid")[:64],
        status=status,
        carrier_state=state or "unknown",
        error_code=error_code,
        to=fields.get("To") or None,
        opted_out=opted_out,
    )


def _inbound(fields: dict[str, str]) -> InboundMessage:
    return InboundMessage(
        sender=required(fields, "From"),
        to=fields.get("To") or None,
        text=fields.get("Body", ""),
        carrier_message_id=(fields.get("MessageSid") or "")[:64] or None,
    )
