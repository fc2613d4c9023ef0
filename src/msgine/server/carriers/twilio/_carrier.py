"""The Twilio upstream: ``POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json``.

One recipient per request (Twilio's Messages API takes one ``To``), HTTP Basic auth with the
Account SID and Auth Token (or an API key and its secret), the sender as ``From`` or the
carrier's Messaging Service, and our receipts route as ``StatusCallback``. Twilio has no
idempotency key for a create: the worker marks each submit before it goes out and a lost answer
follows the carrier's crash policy (``on_uncertain_submit``).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from msgine.server.carriers._base import SubmitRequest, SubmitResult
from msgine.server.carriers._throttle import Throttle
from msgine.server.carriers._upstream import (
    HttpUpstream,
    UncertainSubmit,
    UpstreamOptions,
    apply_rule,
    build_client,
    http_rule,
    lookup,
    retry_after,
)
from msgine.server.carriers.twilio._answers import ANSWERS

DEFAULT_BASE_URL = "https://api.twilio.com"
_SID = r"^{}[0-9a-fA-F]{{32}}$"


class TwilioOptions(UpstreamOptions):
    base_url: str = Field(default=DEFAULT_BASE_URL, min_length=8, max_length=500)
    #: Send through this Messaging Service (its sender pool) when a message names no sender.
    messaging_service_sid: str | None = Field(default=None, pattern=_SID.format("MG"))
    #: ``From`` for messages that name no sender (a number of the account, or an
    #: alphanumeric sender ID where Twilio allows one).
    default_sender: str | None = Field(default=None, max_length=20)
    #: Ask for status callbacks on our receipts route (``StatusCallback``).
    status_callbacks: bool = True

    @model_validator(mode="after")
    def _needs_a_sender(self) -> TwilioOptions:
        if self.messaging_service_sid is None and self.default_sender is None:
            raise ValueError("give messaging_service_sid or default_sender")
        return self


class TwilioCredentials(BaseModel):
    """The account, its Auth Token (which also signs Twilio's callbacks), the previous token
    during a rotation, and optionally an API key to authenticate requests with instead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_sid: str = Field(pattern=_SID.format("AC"))
    auth_token: SecretStr = Field(min_length=16, max_length=64, repr=False)
    previous_auth_token: SecretStr | None = Field(
        default=None, min_length=16, max_length=64, repr=False
    )
    api_key_sid: str | None = Field(default=None, pattern=_SID.format("SK"))
    api_key_secret: SecretStr | None = Field(default=None, min_length=16, max_length=64, repr=False)

    @model_validator(mode="after")
    def _key_pair(self) -> TwilioCredentials:
        if (self.api_key_sid is None) != (self.api_key_secret is None):
            raise ValueError("api_key_sid and api_key_secret go together")
        return self

    def basic_auth(self) -> tuple[str, str]:
        if self.api_key_sid is not None and self.api_key_secret is not None:
            return self.api_key_sid, self.api_key_secret.get_secret_value()
        return self.account_sid, self.auth_token.get_secret_value()

    def signing_tokens(self) -> list[str]:
        tokens = [self.auth_token, self.previous_auth_token]
        return [token.get_secret_value() for token in tokens if token is not None]


class TwilioUpstream(HttpUpstream):
    max_batch = 1

    def __init__(
        self,
        name: str,
        options: TwilioOptions,
        credentials: TwilioCredentials,
        *,
        status_callback: str | None,
        throttle: Throttle | None = None,
    ) -> None:
        super().__init__(name, options, throttle=throttle)
        self.options: TwilioOptions = options
        self._credentials = credentials
        self._status_callback = status_callback if options.status_callbacks else None
        self._path = f"/2010-04-01/Accounts/{credentials.account_sid}/Messages.json"

    def make_client(self) -> httpx.AsyncClient:
        return build_client(self.options, auth=self._credentials.basic_auth())

    async def send(
        self, client: httpx.AsyncClient, requests: Sequence[SubmitRequest]
    ) -> Sequence[SubmitResult]:
        (request,) = requests
        form = {"To": request.to, "Body": request.content}
        service = self.options.messaging_service_sid
        if request.sender or not service:
            form["From"] = request.sender or self.options.default_sender or ""
        else:
            form["MessagingServiceSid"] = service
        if self._status_callback and request.want_receipt:
            form["StatusCallback"] = self._status_callback
        response = await client.post(self._path, data=form)
        if response.status_code in (200, 201):
            return [_accepted(response)]
        code = _error_code(response)
        rule = lookup(ANSWERS, response.status_code, code) or http_rule(response.status_code)
        detail = f"HTTP {response.status_code} {code}".strip()
        return [apply_rule(rule, detail, retry_after=retry_after(response))]


def _accepted(response: httpx.Response) -> SubmitResult:
    try:
        document = response.json()
        sid = document["sid"]
        status = document.get("status")
    except (ValueError, KeyError, TypeError):
        raise UncertainSubmit("unreadable_answer") from None
    if not isinstance(sid, str) or not sid.isascii() or not 2 < len(sid) <= 64:
        raise UncertainSubmit("unreadable_answer")
    word = status if isinstance(status, str) and status.isalpha() else "accepted"
    return SubmitResult(accepted=True, carrier_message_id=sid, detail=word[:32])


def _error_code(response: httpx.Response) -> str:
    """Twilio's numeric error ``code`` of an error answer, or '' (never its message, which
    names the number)."""
    try:
        code = response.json()["code"]
    except (ValueError, KeyError, TypeError):
        return ""
    return str(code) if isinstance(code, int) and 0 < code < 10**6 else ""
