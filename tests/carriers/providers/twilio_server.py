"""A local Twilio Programmable Messaging API, written from its public documentation.

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``: HTTP Basic auth (the Account SID
  and its Auth Token); form ``To``, ``From`` or ``MessagingServiceSid``, ``Body``, optional
  ``StatusCallback``. Answer 201 with the Message resource (``sid`` ``SM...``, ``status``
  ``queued``, or ``accepted`` through a Messaging Service). Errors are JSON ``code``,
  ``message``, ``more_info``, ``status``: 20003 (401) bad credentials, 21211 invalid To,
  21212 invalid From,
  21408 region not enabled, 21602 no Body, 21603 no From, 21604 no To, 21606 From not a
  message-capable number of the account, 21609 invalid StatusCallback, 21610 recipient
  unsubscribed (texted STOP), 21612 To not reachable, 21614 To not a mobile number, 21617 Body
  over 1,600 characters, 20429 (429) too many requests, 20500/20503 server errors.
- ``GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json``: the Message resource.
- Status callbacks to ``StatusCallback`` (``MessageSid``, ``MessageStatus`` sent, delivered,
  undelivered or failed, ``ErrorCode`` 30xxx for the last two) and incoming messages to the
  number's SMS URL (``MessageSid``, ``From``, ``To``, ``Body``, ..., and ``OptOutType`` for the
  default opt-out keywords, after which a send to that number answers 21610). Every callback is
  signed: ``X-Twilio-Signature`` = base64 HMAC-SHA1, keyed by the Auth Token, of the full URL
  followed by each POST parameter's name and value, sorted by name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from providers.provider_server import Callback, Fault, ProviderServer
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API = "/2010-04-01/Accounts/{AccountSid}"
#: code -> (HTTP status, message); the messages as Twilio words them ({} is the number).
ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20400: (400, "Bad request"),
    20403: (403, "Forbidden"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service is unavailable. Please try again"),
    21211: (400, "Invalid 'To' Phone Number: {}"),
    21212: (400, "Invalid From Number (caller ID)"),
    21408: (
        400,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: {}.",
    ),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (
        400,
        "The 'From' phone number provided is not a valid message-capable Twilio phone number "
        "for this destination.",
    ),
    21609: (400, "Invalid StatusCallback url"),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (400, "The 'To' phone number: {}, is not currently reachable via SMS."),
    21614: (400, "'To' number {} is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}
#: Delivery error codes in status callbacks (undelivered / failed).
DELIVERY_ERRORS = {
    30001: "Queue overflow",
    30002: "Account suspended",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}
OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
OPT_IN = {"START", "YES", "UNSTOP"}
HELP = {"HELP", "INFO"}
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ALPHANUMERIC = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature of a form POST to ``url`` (written here from the documentation; the
    tests check it against the twilio package's RequestValidator)."""
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _now() -> str:
    return format_datetime(datetime.now(UTC).replace(microsecond=0))


class TwilioServer(ProviderServer):
    """One Twilio account: its SID and Auth Token, its phone numbers."""

    def __init__(
        self,
        *,
        account_sid: str = "AC" + "a1b2c3d4" * 4,
        auth_token: str = "f00dfeed" * 4,
        tls: bool = False,
        numbers: set[str] | None = None,
        alphanumeric_senders: bool = True,
    ) -> None:
        super().__init__(tls=tls)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.numbers = numbers if numbers is not None else {"+15005550006"}
        self.alphanumeric_senders = alphanumeric_senders
        #: Errors to answer at submit for a destination (To -> error code).
        self.rejections: dict[str, int] = {}
        #: Final state of an accepted message (To -> (status, ErrorCode)); default delivered.
        self.outcomes: dict[str, tuple[str, int | None]] = {}
        #: Numbers that texted an opt-out keyword (Twilio then refuses sends with 21610).
        self.opted_out: set[str] = set()
        #: The SMS URL (incoming messages) of the account's numbers.
        self.sms_url: str | None = None
        self.messages: dict[str, dict[str, Any]] = {}

    def routes(self) -> list[Route]:
        return [
            Route(f"{API}/Messages.json", self._create, methods=["POST"]),
            Route(f"{API}/Messages/{{Sid}}.json", self._fetch, methods=["GET"]),
        ]

    def error(self, fault: Fault) -> Response:
        """An injected HTTP status, with the 20xxx code Twilio gives it (20003 for 401)."""
        code = 20003 if fault.status == 401 else 20000 + fault.status
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        return self._error(code, status=fault.status, headers=headers)

    def _error(
        self,
        code: int,
        number: str = "",
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        http_status, message = ERRORS.get(code, (status or 400, "Error"))
        body = {
            "code": code,
            "message": message.format(number),
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status or http_status,
        }
        return JSONResponse(body, status or http_status, headers=headers)

    # --- the API --------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (
            hmac.compare_digest(user, self.account_sid)
            and hmac.compare_digest(password, self.auth_token)
            and request.path_params["AccountSid"] == self.account_sid
        )

    async def _create(self, request: Request) -> Response:
        recorded, faulted = await self.receive(request)
        if faulted is not None:
            return faulted
        if not self._authorized(request):
            return self._error(20003, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
        form = dict(recorded.form)
        problem = self._check(form)
        if problem is not None:
            return self._error(problem, form.get("To", ""))
        resource = self._accept(form)
        return JSONResponse(resource, 201)

    def _check(self, form: dict[str, str]) -> int | None:
        """The error code a create with this form gets, or None."""
        to, sender, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        body = form.get("Body", "")
        callback = form.get("StatusCallback")
        checks: list[tuple[bool, int]] = [
            (not to, 21604),
            (not sender and not service, 21603),
            (not body and "MediaUrl" not in form, 21602),
            (len(body) > 1600, 21617),
            (not _E164.match(to or ""), 21211),
            (bool(sender) and not self._owns(sender or ""), 21606),
            (callback is not None and not re.match(r"^https?://[^\s/]+", callback), 21609),
            ((to or "") in self.opted_out, 21610),
        ]
        failed = next((code for broken, code in checks if broken), None)
        return failed or self.rejections.get(to or "")

    def _owns(self, sender: str) -> bool:
        return sender in self.numbers or (
            self.alphanumeric_senders and bool(_ALPHANUMERIC.match(sender))
        )

    def _accept(self, form: dict[str, str]) -> dict[str, Any]:
        sid = "SM" + secrets.token_hex(16)
        service = form.get("MessagingServiceSid")
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": form.get("Body", ""),
            "date_created": _now(),
            "date_sent": None,
            "date_updated": _now(),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(max(1, -(-len(form.get("Body", "")) // 153))),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service and not form.get("From") else "queued",
            "subresource_uris": {"media": f"{base}/Media.json"},
            "to": form["To"],
            "uri": f"{base}.json",
        }
        with self.lock:
            self.messages[sid] = resource
        callback = form.get("StatusCallback")
        if callback:
            final, code = self.outcomes.get(form["To"], ("delivered", None))
            self.emit(
                self.status_callback(sid, "sent", url=callback),
                self.status_callback(sid, final, code, url=callback),
            )
        return resource

    async def _fetch(self, request: Request) -> Response:
        _recorded, faulted = await self.receive(request)
        if faulted is not None:
            return faulted
        if not self._authorized(request):
            return self._error(20003)
        resource = self.messages.get(request.path_params["Sid"])
        if resource is None:
            return self._error(20404)
        return JSONResponse(resource)

    # --- callbacks ------------------------------------------------------------------------

    def signed(self, url: str, params: dict[str, str]) -> Callback:
        headers = {
            "X-Twilio-Signature": signature(self.auth_token, url, params),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "User-Agent": "TwilioProxy/1.1",
        }
        return Callback(url, params, headers)

    def status_callback(
        self, sid: str, status: str, error_code: int | None = None, *, url: str
    ) -> Callback:
        """A status callback for message ``sid`` (its resource takes the new status)."""
        resource = self.messages[sid]
        with self.lock:
            resource["status"] = status
            resource["error_code"] = error_code
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": resource["from"] or "",
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": resource["to"],
        }
        if resource["messaging_service_sid"]:
            params["MessagingServiceSid"] = resource["messaging_service_sid"]
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return self.signed(url, params)

    def incoming(
        self, sender: str, body: str, *, to: str | None = None, url: str | None = None
    ) -> Callback:
        """An SMS from ``sender`` to one of the account's numbers; the opt-out keywords also
        change what Twilio itself lets through (Advanced Opt-Out's defaults)."""
        target = url or self.sms_url
        assert target, "no SMS URL configured on the test server"
        sid = "SM" + secrets.token_hex(16)
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "Body": body,
            "From": sender,
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": to or sorted(self.numbers)[0],
        }
        keyword = body.strip().upper()
        if keyword in OPT_OUT | OPT_IN | HELP:
            params["OptOutType"] = (
                "STOP" if keyword in OPT_OUT else "START" if keyword in OPT_IN else "HELP"
            )
            with self.lock:
                if keyword in OPT_OUT:
                    self.opted_out.add(sender)
                elif keyword in OPT_IN:
                    self.opted_out.discard(sender)
        return self.signed(target, params)
