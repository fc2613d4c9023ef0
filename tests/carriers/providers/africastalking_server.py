"""A local Africa's Talking SMS API, written from its public documentation.

- ``POST /version1/messaging``: header ``apiKey``; form ``username``, ``to`` (one number or
  several, comma-separated), ``message``, optional ``from`` (sender ID or short code),
  ``bulkSMSMode``, ``enqueue``. Answer 201 with ``SMSMessageData``: ``Message`` and one entry
  per recipient in ``Recipients`` (``statusCode``, ``number``, ``status``, ``cost``,
  ``messageId``); JSON when ``Accept: application/json``, XML otherwise. A wrong key or
  username: 401, text ``The supplied authentication is invalid``; a missing field: 400, text.
- Per-recipient status codes: 100 Processed, 101 Success, 102 Queued, 401 RiskHold,
  402 InvalidSenderId, 403 InvalidPhoneNumber, 404 UnsupportedNumberType,
  405 InsufficientBalance, 406 UserInBlacklist, 407 CouldNotRoute, 409 DoNotDisturbRejection,
  500 InternalServerError, 501 GatewayError, 502 RejectedByGateway.
- Callbacks (set in the provider's dashboard, one URL per kind, form-encoded POSTs, not
  signed): delivery reports (``id``, ``status``: Sent, Submitted, Buffered, Rejected, Success,
  Failed, AbsentSubscriber; ``phoneNumber``, ``networkCode``, ``failureReason`` when Rejected or
  Failed, ``retryCount``), incoming messages (``from``, ``to``, ``text``, ``date``, ``id``,
  ``linkId``, ``networkCode``) and bulk SMS opt-outs (``senderId``, ``phoneNumber``).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from xml.etree import ElementTree

from providers.provider_server import Callback, Fault, ProviderServer
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

AUTH_FAILED = "The supplied authentication is invalid"

STATUS_NAMES: dict[int, str] = {
    100: "Processed",
    101: "Success",
    102: "Queued",
    401: "RiskHold",
    402: "InvalidSenderId",
    403: "InvalidPhoneNumber",
    404: "UnsupportedNumberType",
    405: "InsufficientBalance",
    406: "UserInBlacklist",
    407: "CouldNotRoute",
    409: "DoNotDisturbRejection",
    500: "InternalServerError",
    501: "GatewayError",
    502: "RejectedByGateway",
}
DELIVERY_STATUSES = ("Sent", "Submitted", "Buffered", "Rejected", "Success", "Failed")
FAILURE_REASONS = (
    "InsufficientCredit",
    "InvalidLinkId",
    "UserIsInactive",
    "UserInBlackList",
    "UserAccountSuspended",
    "NotNetworkSubscriber",
    "UserNotSubscribedToProduct",
    "UserDoesNotExist",
    "DeliveryFailure",
)
#: Network codes by country calling code (Safaricom, MTN Uganda); 99999 is the sandbox's.
_NETWORKS = {"254": "63902", "256": "64110"}
_NUMBER = re.compile(r"^\+\d{6,15}$")


def network_code(number: str) -> str:
    return next((code for cc, code in _NETWORKS.items() if number[1:].startswith(cc)), "99999")


@dataclass(frozen=True)
class SentMessage:
    """A message the provider accepted for one recipient."""

    message_id: str
    number: str
    sender: str | None
    text: str
    status_code: int


class AfricasTalkingServer(ProviderServer):
    """The SMS API of one Africa's Talking application (its username and API key)."""

    def __init__(
        self,
        *,
        username: str = "msgine-app",
        api_key: str = "atsk_" + "k3y" * 8,
        tls: bool = False,
        senders: set[str] | None = None,
        currency: str = "KES",
        price: str = "0.8000",
    ) -> None:
        super().__init__(tls=tls)
        self.username = username
        self.api_key = api_key
        #: Registered sender IDs and short codes; None: any sender is accepted.
        self.senders = senders
        self.currency = currency
        self.price = Decimal(price)
        #: Per-recipient status codes to answer instead of 101 (number -> code).
        self.rejections: dict[str, int] = {}
        #: Delivery report of an accepted message (number -> (status, failureReason)).
        self.outcomes: dict[str, tuple[str, str | None]] = {}
        self.delivery_reports_url: str | None = None
        self.incoming_messages_url: str | None = None
        self.opt_out_url: str | None = None
        self.messages: list[SentMessage] = []

    def routes(self) -> list[Route]:
        return [Route("/version1/messaging", self._messaging, methods=["POST"])]

    def error(self, fault: Fault) -> Response:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        return PlainTextResponse("Server error, please retry", fault.status, headers=headers)

    # --- the API --------------------------------------------------------------------------

    async def _messaging(self, request: Request) -> Response:
        recorded, faulted = await self.receive(request)
        if faulted is not None:
            return faulted
        if recorded.headers.get("apikey") != self.api_key:
            return PlainTextResponse(AUTH_FAILED, 401)
        for name in ("username", "to", "message"):
            if not recorded.field(name):
                return PlainTextResponse(f"Request is missing required form field '{name}'", 400)
        if recorded.field("username") != self.username:
            return PlainTextResponse(AUTH_FAILED, 401)
        sender = recorded.field("from")
        text = recorded.field("message") or ""
        numbers = [n.strip() for n in (recorded.field("to") or "").split(",") if n.strip()]
        recipients = [self._recipient(number, sender, text) for number in numbers]
        accepted = [r for r in recipients if r["statusCode"] in (100, 101, 102)]
        total = sum((self._cost(r) for r in accepted), Decimal(0))
        cost = f"{self.currency} {total:.4f}"
        summary = f"Sent to {len(accepted)}/{len(recipients)} Total Cost: {cost}"
        data = {"SMSMessageData": {"Message": summary, "Recipients": recipients}}
        if "application/json" not in recorded.headers.get("accept", ""):
            return Response(_xml(data), 201, media_type="application/xml")
        return JSONResponse(data, 201)

    def _cost(self, recipient: dict[str, object]) -> Decimal:
        return Decimal(str(recipient["cost"]).split()[-1])

    def _recipient(self, number: str, sender: str | None, text: str) -> dict[str, object]:
        code = self.rejections.get(number, 101)
        if not _NUMBER.match(number):
            code = 403
        elif sender is not None and self.senders is not None and sender not in self.senders:
            code = 402
        if code not in (100, 101, 102):
            entry = {"statusCode": code, "number": number, "status": STATUS_NAMES[code]}
            return {**entry, "cost": "0", "messageId": "None"}
        message_id = "ATXid_" + secrets.token_hex(16)
        with self.lock:
            self.messages.append(SentMessage(message_id, number, sender, text, code))
        if self.delivery_reports_url:
            status, reason = self.outcomes.get(number, ("Success", None))
            self.emit(self.delivery_report(message_id, number, status, reason))
        return {
            "statusCode": code,
            "number": number,
            "status": STATUS_NAMES[code],
            "cost": f"{self.currency} {self.price:.4f}",
            "messageId": message_id,
        }

    # --- callbacks ------------------------------------------------------------------------

    def delivery_report(
        self,
        message_id: str,
        number: str,
        status: str = "Success",
        failure_reason: str | None = None,
        *,
        url: str | None = None,
    ) -> Callback:
        form = {
            "id": message_id,
            "status": status,
            "phoneNumber": number,
            "networkCode": network_code(number),
            "retryCount": "0",
        }
        if failure_reason is not None:
            form["failureReason"] = failure_reason
        return Callback(_need(url or self.delivery_reports_url), form)

    def incoming(
        self, sender: str, text: str, *, to: str = "40404", url: str | None = None
    ) -> Callback:
        form = {
            "from": sender,
            "to": to,
            "text": text,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "id": secrets.token_hex(16),
            "linkId": secrets.token_hex(8),
            "networkCode": network_code(sender),
        }
        return Callback(_need(url or self.incoming_messages_url), form)

    def opt_out(self, number: str, sender_id: str, *, url: str | None = None) -> Callback:
        return Callback(
            _need(url or self.opt_out_url), {"senderId": sender_id, "phoneNumber": number}
        )


def _need(url: str | None) -> str:
    assert url, "no callback URL configured on the test server"
    return url


def _xml(data: dict[str, dict[str, object]]) -> bytes:
    root = ElementTree.Element("AfricasTalkingResponse")
    sms = ElementTree.SubElement(root, "SMSMessageData")
    body = data["SMSMessageData"]
    ElementTree.SubElement(sms, "Message").text = str(body["Message"])
    recipients = ElementTree.SubElement(sms, "Recipients")
    for entry in body["Recipients"]:  # type: ignore[attr-defined]
        node = ElementTree.SubElement(recipients, "Recipient")
        for key, value in entry.items():
            ElementTree.SubElement(node, key).text = str(value)
    return ElementTree.tostring(root, xml_declaration=True, encoding="utf-8")
