"""Receipts and inbound messages that an HTTP upstream pushes to the gateway.

Each carrier instance of a kind with callbacks gets one route family,
``POST /api/v1/carriers/{carrier}/callbacks/{token}/{what}``. A request passes three gates
before anything is read from its body, each refusing with 401 (``unauthorized``, the same
message for every reason, which goes only to the security log):

1. the path's token: 256 random bits made when the carrier is added, shown to the operator
   once (to configure at the provider), stored envelope-encrypted like the credentials (a
   connector puts its callback URL in its submits, e.g. Twilio's ``StatusCallback``), and
   compared in constant time. It makes the route unguessable, also for providers that sign
   nothing;
2. the kind's :meth:`Callbacks.authenticate`: the provider's signature over the raw request
   (with the credentials decrypted in memory), or its source addresses;
3. replay: the replay key ``authenticate`` returns (a signed delivery id and timestamp) is
   recorded once per carrier in ``carrier_callbacks``, in the transaction that stores what
   the request carries; a second request with the same key is refused.

Only then does :meth:`Callbacks.parse` read the body into receipts and inbound messages, which go
to the same durable sink as an SMPP bind's (``_sink.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from pydantic import BaseModel

from msgine.server.carriers._base import InboundMessage, Receipt
from msgine.server.crypto import Vault
from msgine.server.storage._tables import carrier_callbacks

#: Where the callback routes live under the API prefix.
CALLBACK_PREFIX = "/carriers"
#: How long a replay key is remembered: past it, the provider's own timestamp check refuses.
REPLAY_WINDOW = timedelta(hours=1)
_TOKEN_BYTES = 32


def new_callback_token() -> str:
    """A fresh token for a carrier's callback path (URL-safe, 43 characters)."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def token_matches(presented: str, stored: str | None) -> bool:
    """Constant-time comparison of a presented token with the carrier's (digests of both, so
    neither length nor content leaks through timing)."""
    if not stored:
        return False
    left = hashlib.sha256(presented[:256].encode("utf-8", "replace")).digest()
    return hmac.compare_digest(left, hashlib.sha256(stored.encode()).digest())


def callback_url(public_url: str | None, carrier: str, token: str) -> str:
    """The base URL to configure at the provider; the kind's paths follow it."""
    base = (public_url or "https://YOUR-GATEWAY").rstrip("/")
    return f"{base}/api/v1{CALLBACK_PREFIX}/{carrier}/callbacks/{token}"


class CallbackRefused(Exception):
    """The request is not the provider's. ``reason`` is for the security log (a stable word,
    never a value from the request); the caller answers 401 whatever it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CallbackRequest:
    """One callback request, as the kind sees it.

    ``url`` is the URL the provider called, rebuilt from the gateway's public URL
    (``MSGINE_PUBLIC_URL``) when set, so signatures over the full URL (Twilio's) check behind
    a TLS-terminating proxy. ``what`` is the path after the token (``receipts``,
    ``inbound``...). ``headers`` have lower-case names."""

    method: str
    url: str = field(repr=False)
    what: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    client_ip: str | None = field(repr=False)
    received_at: datetime


@dataclass(frozen=True)
class CallbackCarrier:
    """The carrier a callback is for: its options and decrypted credentials (in memory), and
    the vault (for keyed tags such as the MsGine kind's per-recipient message ids)."""

    name: str
    options: BaseModel
    credentials: BaseModel | None = field(repr=False)
    vault: Vault = field(repr=False)


@dataclass(frozen=True)
class CallbackContent:
    """What an authenticated callback carries, and how to answer the provider."""

    receipts: Sequence[Receipt] = ()
    inbound: Sequence[InboundMessage] = ()
    #: The answer's body and type (Twilio expects TwiML for an inbound message).
    answer: bytes = b""
    content_type: str = "text/plain"


class Callbacks(Protocol):
    """A kind's callback handler (``CarrierKind.callbacks``): stateless, shared by carriers."""

    def authenticate(self, request: CallbackRequest, carrier: CallbackCarrier) -> str | None:
        """Check the request is the provider's, reading only the raw request. Return a key
        unique to this delivery attempt (recorded to refuse a replay), or None where the
        provider signs nothing unique (then the sink's own dedupe by carrier message id is
        all there is). Raise :class:`CallbackRefused` otherwise."""
        ...

    def parse(self, request: CallbackRequest, carrier: CallbackCarrier) -> CallbackContent:
        """Read an authenticated request; raise ``InvalidRequest`` for a malformed one."""
        ...


def remember_once(conn: sa.Connection, carrier: str, key: str, now: datetime) -> bool:
    """Record a replay key; False if this carrier saw it within ``REPLAY_WINDOW``. Called in
    the transaction that stores the callback's content, so a refused replay stores nothing
    and a crash before the commit leaves the key free for the provider's retry."""
    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
    conn.execute(
        sa.delete(carrier_callbacks).where(carrier_callbacks.c.received_at < now - REPLAY_WINDOW)
    )
    seen = conn.execute(
        sa.select(carrier_callbacks.c.key).where(
            carrier_callbacks.c.carrier == carrier, carrier_callbacks.c.key == digest
        )
    ).first()
    if seen is not None:
        return False
    conn.execute(sa.insert(carrier_callbacks).values(carrier=carrier, key=digest, received_at=now))
    return True
