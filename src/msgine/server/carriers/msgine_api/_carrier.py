"""The MsGine upstream: submits through MsGine's public API (``POST {base}/messages/sms``).

The gateway can so sit in front of MsGine as a security proxy: applications hold narrow, local,
revocable keys, and the real MsGine key lives only here, encrypted at rest.

Every request carries an ``Idempotency-Key`` derived from our stable submit keys: MsGine answers
a repeated request with its first answer and sends nothing again, so a submit retried after a
crash (or a lost answer) is never sent twice. With ``batch_size`` > 1, recipients sharing a text
and sender go in one request (``to`` as a list); the key then names the group, which a retry
after a crash may not rebuild identically, so a batching carrier is not idempotent and the
worker marks its submits (the carrier's crash policy applies, as for SMPP).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from msgine.server.carriers._base import SubmitRequest, SubmitResult
from msgine.server.carriers._throttle import Throttle
from msgine.server.carriers._upstream import (
    HttpUpstream,
    UpstreamOptions,
    apply_rule,
    build_client,
    http_rule,
    lookup,
    retry_after,
)
from msgine.server.carriers.msgine_api._answers import RECIPIENT_ANSWERS, REQUEST_ANSWERS
from msgine.server.crypto import Vault

DEFAULT_BASE_URL = "https://api.msgine.net/api/v1"
SEND_PATH = "/messages/sms"
#: Recipients MsGine takes in one send.
MAX_RECIPIENTS = 1000
_CODE_LENGTH = 64


class MsgineOptions(UpstreamOptions):
    base_url: str = Field(default=DEFAULT_BASE_URL, min_length=8, max_length=500)
    #: Sender for messages that have none of their own (MsGine's account default otherwise).
    default_sender: str | None = Field(default=None, max_length=20)


class MsgineCredentials(BaseModel):
    """The MsGine API key the gateway sends with, and the signing secret of the webhook
    endpoint registered at MsGine for our callback URL (``whsec_...``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr = Field(min_length=8, max_length=200, repr=False)
    webhook_secret: SecretStr | None = Field(default=None, max_length=200, repr=False)
    #: The secret before a rotation at MsGine, accepted until removed.
    previous_webhook_secret: SecretStr | None = Field(default=None, max_length=200, repr=False)


def recipient_tag(vault: Vault, carrier: str, number: str) -> str:
    """A keyed tag of a number: told apart per recipient in one MsGine message, without the
    number itself in our carrier message id (which is stored and shown unencrypted)."""
    return vault.blind_index(f"carrier/{carrier}", number)[:16]


def carrier_message_id(message_id: str, tag: str) -> str:
    return f"{message_id[:40]}:{tag}"


def idempotency_key(requests: Sequence[SubmitRequest]) -> str:
    """One recipient: its submit key. A group: a digest of its members' keys."""
    if len(requests) == 1:
        return requests[0].submit_key
    joined = "\n".join(sorted(r.submit_key for r in requests))
    return "batch_" + hashlib.sha256(joined.encode()).hexdigest()[:40]


class MsgineUpstream(HttpUpstream):
    max_batch = MAX_RECIPIENTS

    def __init__(
        self,
        name: str,
        options: MsgineOptions,
        credentials: MsgineCredentials,
        vault: Vault,
        *,
        throttle: Throttle | None = None,
    ) -> None:
        super().__init__(name, options, throttle=throttle)
        self.options: MsgineOptions = options
        self._credentials = credentials
        self._vault = vault
        self.idempotent = self.batch_size == 1

    def make_client(self) -> httpx.AsyncClient:
        token = self._credentials.api_key.get_secret_value()
        return build_client(self.options, headers={"Authorization": f"Bearer {token}"})

    async def send(
        self, client: httpx.AsyncClient, requests: Sequence[SubmitRequest]
    ) -> Sequence[SubmitResult]:
        first = requests[0]
        body: dict[str, Any] = {
            "to": [r.to for r in requests] if len(requests) > 1 else first.to,
            "message": first.content,
        }
        sender = first.sender or self.options.default_sender
        if sender:
            body["from"] = sender
        response = await client.post(
            SEND_PATH, json=body, headers={"Idempotency-Key": idempotency_key(requests)}
        )
        if response.status_code in (200, 201):
            return self._accepted(response, requests)
        code = _error_code(response)
        rule = lookup(REQUEST_ANSWERS, response.status_code, code) or http_rule(
            response.status_code
        )
        detail = f"HTTP {response.status_code} {code}".strip()
        result = apply_rule(rule, detail, retry_after=retry_after(response))
        return [result] * len(requests)

    def _accepted(
        self, response: httpx.Response, requests: Sequence[SubmitRequest]
    ) -> list[SubmitResult]:
        """Each recipient's outcome from MsGine's answer, matched by number."""
        try:
            document = response.json()
            message_id = str(document["id"])
            by_number = {str(r["to"]): r for r in document.get("recipients") or []}
        except (ValueError, KeyError, TypeError):
            # MsGine took the request (2xx) but the answer is unreadable: resending under the
            # same key returns the first answer, so a retry is safe.
            bad = SubmitResult(accepted=False, retryable=True, detail="unreadable answer")
            return [bad] * len(requests)
        results = []
        for request in requests:
            item = by_number.get(request.to) or {}
            status = str(item.get("status", "queued"))
            code = str(item.get("errorCode") or "")[:_CODE_LENGTH]
            rule = lookup(RECIPIENT_ANSWERS, status, code) or lookup(
                RECIPIENT_ANSWERS, "failed", ""
            )
            assert rule is not None
            tag = recipient_tag(self._vault, self.name, request.to)
            results.append(
                apply_rule(
                    rule,
                    f"{status} {code}".strip(),
                    carrier_message_id=carrier_message_id(message_id, tag),
                )
            )
        return results


def _error_code(response: httpx.Response) -> str:
    """The contract's ``error.code`` of an error answer, or '' (never its message)."""
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""
    return code[:_CODE_LENGTH] if isinstance(code, str) and code.isascii() else ""
