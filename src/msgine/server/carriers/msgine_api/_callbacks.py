"""MsGine's webhooks to our callback route: receipts (``message.sent|delivered|failed``) and
inbound messages (``message.received``).

Verified with our own SDK's verifier (``msgine.webhooks``) against the raw body: Standard
Webhooks headers only (the unsigned-time ``x-msgine-signature`` alone is refused), a timestamp
within five minutes, a signature by the endpoint's secret (or the previous one during a
rotation). The replay key is the delivery's ``webhook-id`` and ``webhook-timestamp``: MsGine
signs each attempt afresh, so its own retry passes and a captured request sent again does not.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from msgine.server.carriers._base import InboundMessage, Receipt
from msgine.server.carriers._callbacks import (
    CallbackCarrier,
    CallbackContent,
    CallbackRefused,
    CallbackRequest,
)
from msgine.server.carriers.msgine_api._answers import RECEIPT_STATES
from msgine.server.carriers.msgine_api._carrier import (
    MsgineCredentials,
    carrier_message_id,
    recipient_tag,
)
from msgine.server.errors import InvalidRequest
from msgine.webhooks import WebhookVerificationError, WebhookVerifier

EVENTS_PATH = "events"
TOLERANCE = 300


class MsgineCallbacks:
    def authenticate(self, request: CallbackRequest, carrier: CallbackCarrier) -> str | None:
        if request.what != EVENTS_PATH:
            raise CallbackRefused("unknown_path")
        secrets = _secrets(carrier)
        if not secrets:
            raise CallbackRefused("no_webhook_secret")
        verifier = WebhookVerifier(secrets, TOLERANCE)
        try:
            verifier.verify_delivery(
                request.body, request.headers, now=request.received_at.timestamp()
            )
        except WebhookVerificationError as exc:
            raise CallbackRefused(exc.reason) from None
        return f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}"

    def parse(self, request: CallbackRequest, carrier: CallbackCarrier) -> CallbackContent:
        try:
            event = json.loads(request.body)
            kind = str(event["event"])
        except (ValueError, KeyError, TypeError):
            raise InvalidRequest("Not a MsGine event.") from None
        if kind == "message.received":
            return CallbackContent(inbound=[_inbound(event)])
        state = RECEIPT_STATES.get(kind)
        if state is None:  # an event we do not use (opt-outs, key revoked): taken, ignored
            return CallbackContent()
        return CallbackContent(receipts=[_receipt(event, state, carrier)])


def _secrets(carrier: CallbackCarrier) -> list[str]:
    creds = carrier.credentials
    if not isinstance(creds, MsgineCredentials):
        return []
    found = [creds.webhook_secret, creds.previous_webhook_secret]
    return [s.get_secret_value() for s in found if s is not None]


def _text(event: dict[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"The event has no {key}.", details={"field": key})
    return value


def _data(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    return data if isinstance(data, dict) else {}


def _receipt(event: dict[str, Any], state: str, carrier: CallbackCarrier) -> Receipt:
    to = _text(event, "to")
    tag = recipient_tag(carrier.vault, carrier.name, to)
    data = _data(event)
    code = data.get("errorCode") if state == "failed" else None
    return Receipt(
        carrier_message_id=carrier_message_id(_text(event, "messageId"), tag),
        status=state,  # type: ignore[arg-type]  # RECEIPT_STATES holds ReceiptStatus words
        carrier_state=str(event.get("status") or state)[:32],
        error_code=str(code)[:64] if code else None,
        done_at=_time(event.get("timestamp")),
        to=to,
    )


def _inbound(event: dict[str, Any]) -> InboundMessage:
    data = _data(event)
    text = data.get("message")
    if not isinstance(text, str):
        raise InvalidRequest("The event has no message.", details={"field": "data.message"})
    return InboundMessage(
        sender=_text(event, "from"),
        to=event.get("to") if isinstance(event.get("to"), str) else None,
        text=text,
        carrier_message_id=_text(event, "messageId")[:64],
    )


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
