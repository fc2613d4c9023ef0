"""The Africa's Talking upstream: ``POST {base}/version1/messaging`` (form-encoded).

One request carries every recipient of a group (``to`` comma-separated, up to ``batch_size``);
AT answers each recipient on its own (``statusCode``, ``messageId``), so one refused number does
not fail the others. AT has no idempotency key: the worker marks each submit before it goes out
and a lost answer follows the carrier's crash policy (``on_uncertain_submit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

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
from msgine.server.carriers.africastalking._answers import (
    RECIPIENT_ANSWERS,
    REQUEST_ANSWERS,
    UNKNOWN_RECIPIENT,
)

DEFAULT_BASE_URL = "https://api.africastalking.com"
SANDBOX_BASE_URL = "https://api.sandbox.africastalking.com"
SEND_PATH = "/version1/messaging"
#: Recipients per request at most (AT's bulk sends take long lists; a thousand keeps one
#: request's answer small and its loss, if any, bounded).
MAX_RECIPIENTS = 1000
_ID_LENGTH = 64


class AfricasTalkingOptions(UpstreamOptions):
    base_url: str = Field(default=DEFAULT_BASE_URL, min_length=8, max_length=500)
    batch_size: int = Field(default=100, ge=1, le=MAX_RECIPIENTS)
    #: Sender ID or short code for messages that have none (AT's account default otherwise).
    default_sender: str | None = Field(default=None, max_length=20)
    #: AT's ``enqueue=1``: accepted at once and sent from AT's queue (large bulk sends).
    enqueue: bool = False
    #: Addresses AT's callbacks may come from (CIDR); empty: any (the path's token still holds).
    callback_sources: tuple[IPv4Network | IPv6Network, ...] = ()


class AfricasTalkingCredentials(BaseModel):
    """The application's username and API key (``apiKey`` header)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    api_key: SecretStr = Field(min_length=8, max_length=200, repr=False)


class AfricasTalkingUpstream(HttpUpstream):
    max_batch = MAX_RECIPIENTS

    def __init__(
        self,
        name: str,
        options: AfricasTalkingOptions,
        credentials: AfricasTalkingCredentials,
        *,
        throttle: Throttle | None = None,
    ) -> None:
        super().__init__(name, options, throttle=throttle)
        self.options: AfricasTalkingOptions = options
        self._credentials = credentials

    def make_client(self) -> httpx.AsyncClient:
        headers = {
            "apiKey": self._credentials.api_key.get_secret_value(),
            "Accept": "application/json",
        }
        return build_client(self.options, headers=headers)

    async def send(
        self, client: httpx.AsyncClient, requests: Sequence[SubmitRequest]
    ) -> Sequence[SubmitResult]:
        results: dict[int, SubmitResult] = {}
        # A number twice in one ``to`` would get one answer for two messages: such repeats go
        # in a request of their own.
        for positions in _rounds(requests):
            answered = await self._send_round(client, [requests[i] for i in positions])
            results.update(zip(positions, answered, strict=True))
        return [results[i] for i in range(len(requests))]

    async def _send_round(
        self, client: httpx.AsyncClient, requests: Sequence[SubmitRequest]
    ) -> list[SubmitResult]:
        first = requests[0]
        form: dict[str, Any] = {
            "username": self._credentials.username,
            "to": ",".join(r.to for r in requests),
            "message": first.content,
            "bulkSMSMode": "1",
        }
        sender = first.sender or self.options.default_sender
        if sender:
            form["from"] = sender
        if self.options.enqueue:
            form["enqueue"] = "1"
        response = await client.post(SEND_PATH, data=form)
        if response.status_code in (200, 201):
            return _per_recipient(response, requests)
        rule = lookup(REQUEST_ANSWERS, response.status_code, "*") or http_rule(response.status_code)
        result = apply_rule(rule, f"HTTP {response.status_code}", retry_after=retry_after(response))
        return [result] * len(requests)


def _rounds(requests: Sequence[SubmitRequest]) -> list[list[int]]:
    """Positions of the requests, split so that no number appears twice in one round."""
    rounds: list[list[int]] = []
    seen: list[set[str]] = []
    for position, request in enumerate(requests):
        index = next((i for i, numbers in enumerate(seen) if request.to not in numbers), None)
        if index is None:
            rounds.append([])
            seen.append(set())
            index = len(rounds) - 1
        rounds[index].append(position)
        seen[index].add(request.to)
    return rounds


def _digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def _per_recipient(
    response: httpx.Response, requests: Sequence[SubmitRequest]
) -> list[SubmitResult]:
    """Each recipient's outcome from the ``Recipients`` of a 201, matched by number."""
    try:
        entries = response.json()["SMSMessageData"]["Recipients"]
        by_number = {_digits(str(entry["number"])): entry for entry in entries}
    except (ValueError, KeyError, TypeError):
        # AT took the request but its answer is unreadable: some numbers may have been sent.
        raise UncertainSubmit("unreadable_answer") from None
    results = []
    for request in requests:
        entry = by_number.get(_digits(request.to))
        if entry is None:
            raise UncertainSubmit("recipient_missing_from_answer")
        results.append(_recipient_result(entry))
    return results


def _recipient_result(entry: dict[str, Any]) -> SubmitResult:
    try:
        code = int(entry.get("statusCode", -1))
    except (TypeError, ValueError):
        code = -1
    status = str(entry.get("status", ""))
    word = status if status.isascii() and status.isalnum() else ""
    rule = lookup(RECIPIENT_ANSWERS, code, "*") or UNKNOWN_RECIPIENT
    message_id = str(entry.get("messageId") or "")[:_ID_LENGTH]
    return apply_rule(
        rule,
        f"{code} {word[:32]}".strip(),
        carrier_message_id=message_id if rule.outcome == "accepted" else None,
    )
