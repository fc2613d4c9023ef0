"""The callback service: one provider request in, authenticated, stored, answered.

The order is the security property (see ``_callbacks.py``): the path's token, then the kind's
authentication of the raw request, then (in the storing transaction) the replay check; the
body is parsed only after the first two passed. Every refusal is the same
:class:`~msgine.server.errors.Unauthorized` to the caller and a security event in the log,
naming the carrier (only when it exists), the reason and the source address, never a value
from the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from msgine.server.carriers._callbacks import (
    CallbackCarrier,
    CallbackContent,
    CallbackRefused,
    CallbackRequest,
    remember_once,
    token_matches,
)
from msgine.server.carriers._config import callback_target
from msgine.server.carriers._registry import get_kind, parse_credentials, parse_options
from msgine.server.carriers._sink import DurableEvents
from msgine.server.errors import Unauthorized
from msgine.server.logging import security_event
from msgine.server.runtime import Runtime

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
REFUSED = "The callback could not be authenticated."


class Replayed(Exception):
    """Raised inside the storing transaction: the replay key was seen."""


@dataclass(frozen=True)
class Received:
    content: CallbackContent
    kind: str


def refuse(carrier: str, reason: str, request: CallbackRequest) -> Unauthorized:
    security_event(
        "carrier_callback_refused",
        carrier=carrier if _NAME.match(carrier) else "(invalid name)",
        reason=reason,
        what=request.what[:32] if _NAME.match(request.what) else "(invalid)",
        ip=request.client_ip,
    )
    return Unauthorized(REFUSED)


async def receive(
    runtime: Runtime, sink: DurableEvents, carrier: str, token: str, request: CallbackRequest
) -> Received:
    """Authenticate, parse and store one callback; raises ``Unauthorized`` if refused."""
    target = None
    if _NAME.match(carrier):
        target = await runtime.db.aread(lambda conn: callback_target(conn, runtime.vault, carrier))
    if target is None or not token_matches(token, target.token):
        raise refuse(carrier, "bad_token", request)
    kind = get_kind(target.kind)
    if kind.callbacks is None:
        raise refuse(carrier, "no_callbacks", request)
    context = CallbackCarrier(
        name=carrier,
        options=parse_options(kind, target.options),
        credentials=parse_credentials(kind, target.credentials),
        vault=runtime.vault,
    )
    try:
        replay_key = kind.callbacks.authenticate(request, context)
    except CallbackRefused as exc:
        raise refuse(carrier, exc.reason, request) from None
    content = kind.callbacks.parse(request, context)
    now = runtime.now()

    def guard(conn: sa.Connection) -> None:
        if replay_key is not None and not remember_once(conn, carrier, replay_key, now):
            raise Replayed

    try:
        await sink.store(carrier, content.receipts, content.inbound, guard)
    except (Replayed, sa.exc.IntegrityError):  # the same key stored concurrently: a replay too
        raise refuse(carrier, "replayed", request) from None
    return Received(content, target.kind)
