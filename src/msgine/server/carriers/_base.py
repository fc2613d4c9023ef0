"""What the delivery worker needs from a carrier connector, and what a connector may call back.

A connector is an adapter at the edge: the simulator, an SMPP session, an HTTP upstream. The
worker hands it one :class:`SubmitRequest` per recipient; a connector that holds connections
(SMPP binds, HTTP clients) is started with a :class:`CarrierEvents` sink through which it reports
delivery receipts and mobile-originated messages. The sink's coroutines return only once the
item is durably stored, so a connector acknowledges to its carrier (``deliver_sm_resp``, an HTTP
200) after they return: a crash in between loses nothing, the carrier redelivers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

#: How a recipient's outcome reads after a receipt. ``sent`` is a non-final carrier state
#: (accepted, en route); ``unknown`` means the carrier itself does not know.
ReceiptStatus = Literal["sent", "delivered", "failed", "unknown"]


@dataclass(frozen=True)
class SubmitRequest:
    """One recipient's submission. ``submit_key`` is stable across retries: a connector must
    use it to make a repeated submit return the first result instead of sending again (where
    the carrier offers no such key, the framework's crash policy decides; see docs/carriers.md).

    ``encoding`` and ``segments`` come from the gateway's own segmenter (``GSM-7`` or
    ``UCS-2``), so every connector splits a long message the way the price was computed."""

    submit_key: str
    to: str = field(repr=False)
    sender: str | None
    content: str = field(repr=False)
    mode: str
    encoding: str = "GSM-7"
    segments: int = 1
    want_receipt: bool = True


@dataclass(frozen=True)
class SubmitResult:
    """A submit's outcome. ``accepted`` with a ``carrier_message_id`` means the carrier took it.

    Otherwise: ``retryable`` puts the recipient back in the queue with backoff (honouring
    ``retry_after`` seconds when the carrier said how long); ``failover`` means this carrier
    cannot take this message now or ever (unbound, throttled past its budget, refuses the
    destination), so the route's next carrier should; neither means it failed for good.
    ``error_code`` is ours (``invalid_destination``, ``throttled``, ...); ``detail`` is the
    carrier's own word for operators (an SMPP command status name, an HTTP status), never
    personal data or a credential. ``opted_out``: the carrier refused the recipient because it
    opted out (with the carrier), so the gateway adds it to the account's suppression list."""

    accepted: bool
    carrier_message_id: str | None = None
    error_code: str | None = None
    retryable: bool = False
    failover: bool = False
    retry_after: float | None = None
    detail: str | None = None
    opted_out: bool = False


@dataclass(frozen=True)
class Receipt:
    """A delivery receipt, matched to a recipient by the carrier's message id."""

    carrier_message_id: str
    status: ReceiptStatus
    #: The carrier's own state word (``DELIVRD``, ``UNDELIV``, ``delivered``...), for history.
    carrier_state: str
    error_code: str | None = None
    done_at: datetime | None = None
    #: The destination number, where the receipt names it (an SMPP ``deliver_sm``'s source
    #: address): used only to settle a recipient whose submit's answer was lost in a crash.
    to: str | None = field(default=None, repr=False)
    #: The carrier says the recipient opted out (with it): the gateway also adds the number to
    #: the account's suppression list, as for a submit refused for that reason.
    opted_out: bool = False


@dataclass(frozen=True)
class InboundMessage:
    """A mobile-originated message, already reassembled from its parts."""

    sender: str = field(repr=False)
    to: str | None = field(repr=False)
    text: str = field(repr=False)
    carrier_message_id: str | None = None


@dataclass(frozen=True)
class CarrierHealth:
    """What ``/readyz``, the metrics and ``msgine carriers status`` show of one carrier."""

    state: Literal["up", "degraded", "down"]
    binds_up: int = 0
    binds_wanted: int = 0
    window_in_use: int = 0
    detail: str | None = None


class CarrierEvents(Protocol):
    """Implemented by the gateway; each coroutine returns once the item is durably stored."""

    async def receipt(self, carrier: str, receipt: Receipt) -> None: ...

    async def inbound(self, carrier: str, message: InboundMessage) -> None: ...


class Carrier(Protocol):
    """A connector. The worker calls ``submit`` once per recipient, for a whole batch at once
    (concurrently), so a connector's round trips overlap (an HTTP upstream groups them into
    one request where its provider takes several recipients); a ``retryable`` result puts that
    recipient back in the queue with backoff. Return a result whenever the carrier's answer is
    known (``retryable`` or ``failover`` when nothing was sent); raise only when it is not (the
    connection dropped with the submit in flight, a timeout): the gateway then applies the
    carrier's crash policy (``on_uncertain_submit``) instead of sending blindly again."""

    name: str

    async def submit(self, request: SubmitRequest) -> SubmitResult: ...


@runtime_checkable
class ConnectedCarrier(Carrier, Protocol):
    """A connector that holds connections: started once per worker process, stopped at exit."""

    async def start(self, events: CarrierEvents) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> CarrierHealth: ...
