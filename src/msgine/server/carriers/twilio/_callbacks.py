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

from msgine.server.carriers._callbacks import (
    CallbackCarrier,
    CallbackContent,
    CallbackRefused,
    CallbackRequest,
)
from msgine.server.carriers._forms import (
    FormNames,
    MalformedForm,
    ReceiptTables,
    form_fields,
    form_inbound,
    form_pairs,
    form_receipt,
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
#: Where Twilio's callbacks put what we read.
NAMES = FormNames(
    message_id="MessageSid",
    state="MessageStatus",
    error="ErrorCode",
    recipient="To",
    sender="From",
    texted="To",
    text="Body",
)
TABLES = ReceiptTables(RECEIPT_STATES, DELIVERY_ERRORS, UNKNOWN_DELIVERY_ERROR)
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
                inbound=[form_inbound(fields, NAMES)], answer=EMPTY_TWIML, content_type="text/xml"
            )
        return CallbackContent(receipts=[form_receipt(fields, NAMES, TABLES)])
