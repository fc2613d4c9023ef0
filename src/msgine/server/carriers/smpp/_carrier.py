"""The SMPP 3.4 carrier: keeps its binds up, submits messages, takes receipts and MO messages.

Each bind has its own task that connects, binds, waits for the bind to end, and reconnects with
exponential backoff and full jitter (a refused bind is logged with its command status and shown
in the carrier's health). A submit goes to the bound session with the fewest PDUs in flight,
after the carrier's throughput cap (shared by all processes) lets it through.

A long message's parts go out in order on one bind. Only the last part asks for a receipt, and
its message id is the one the recipient is matched by. If a later part fails after earlier
ones were sent, the message is not submitted again whole (the handset would show the first
parts twice): it is reported failed (``partially_sent``), after a few in-place retries of a
throttled part.

Every deliver_sm is answered only after the gateway stored what it carries (see _session.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
import ssl
import time
from dataclasses import dataclass, field
from typing import Literal

import smpp34

from msgine.server.carriers._base import (
    CarrierEvents,
    CarrierHealth,
    InboundMessage,
    SubmitRequest,
    SubmitResult,
)
from msgine.server.carriers._throttle import Throttle
from msgine.server.carriers.smpp import _pdu
from msgine.server.carriers.smpp._encoding import (
    ESM_UDHI,
    Concat,
    Part,
    decode_text,
    sar_concat,
    source_address,
    split_udh,
    submit_parts,
)
from msgine.server.carriers.smpp._options import SmppCredentials, SmppOptions
from msgine.server.carriers.smpp._receipts import NotAReceipt, receipt_from
from msgine.server.carriers.smpp._session import BindRefused, Session, SessionClosed
from msgine.server.carriers.smpp._status import ESME_ROK, command_status
from msgine.server.logging import get_logger

log = get_logger("msgine.carriers.smpp")

#: esm_class message types that carry a receipt (SMSC delivery receipt, intermediate
#: notification, SME delivery acknowledgement).
_RECEIPT_TYPES = (0x04, 0x08, 0x20)
_ESME_RINVESMCLASS = 0x43
#: A receipt's text is short; an SMSC that sends more gets only this much read.
_RECEIPT_TEXT_LIMIT = 1024


@dataclass
class _Group:
    """The parts of one concatenated MO message received so far."""

    parts: dict[int, bytes]
    data_coding: int
    started: float
    stored: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SmppCarrier:
    """An SMSC reached over SMPP 3.4, implementing ``ConnectedCarrier``."""

    def __init__(
        self,
        name: str,
        options: SmppOptions,
        credentials: SmppCredentials,
        *,
        throttle: Throttle | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self._credentials = credentials
        self._throttle = throttle
        self._events: CarrierEvents | None = None
        self._sessions: list[Session] = []
        self._slots: list[asyncio.Task[None]] = []
        self._bound = asyncio.Event()
        self._stopping = asyncio.Event()
        self._last_error: str | None = None
        self._references = itertools.count(random.randrange(256))
        self._groups: dict[tuple[str, str, int, int], _Group] = {}

    def __repr__(self) -> str:
        return f"SmppCarrier(name={self.name!r})"

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, events: CarrierEvents) -> None:
        self._events = events
        self._stopping.clear()
        if self.options.bind_mode == "transceiver":
            kinds = ["transceiver"] * self.options.binds
        else:
            kinds = ["transmitter"] * self.options.binds + ["receiver"] * self.options.receivers
        attempted = [asyncio.Event() for _ in kinds]
        self._slots = [
            asyncio.create_task(self._keep_bound(kind, tried))
            for kind, tried in zip(kinds, attempted, strict=True)
        ]
        # Return once every bind was tried (bound or refused), so the carrier's health is
        # known when the worker first routes: a carrier still connecting is not "down".
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(tried.wait() for tried in attempted)), self.options.bind_wait
            )

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(
            *(session.close(unbind=True) for session in list(self._sessions)),
            return_exceptions=True,
        )
        for slot in self._slots:
            slot.cancel()
        await asyncio.gather(*self._slots, return_exceptions=True)
        self._sessions.clear()
        if self._throttle is not None:
            await self._throttle.aclose()
        self._slots.clear()

    def health(self) -> CarrierHealth:
        wanted = len(self._slots)
        up = sum(1 for session in self._sessions if not session.closed.is_set())
        state: Literal["up", "degraded", "down"] = (
            "up" if wanted and up == wanted else "degraded" if up else "down"
        )
        return CarrierHealth(
            state=state,
            binds_up=up,
            binds_wanted=wanted,
            window_in_use=sum(session.in_flight for session in self._sessions),
            detail=None if state == "up" else self._last_error,
        )

    async def _keep_bound(self, kind: str, tried: asyncio.Event) -> None:
        attempt = 0
        while not self._stopping.is_set():
            session = Session(self.options, self._credentials, kind, self._on_deliver)
            try:
                await session.open()
            except BindRefused as refused:
                self._last_error = f"bind refused: {refused}"
                log.warning("smpp_bind_refused", carrier=self.name, command_status=str(refused))
            except (OSError, TimeoutError, SessionClosed, ssl.SSLError) as exc:
                self._last_error = f"connect failed: {type(exc).__name__}"
                log.warning("smpp_connect_failed", carrier=self.name, error_type=type(exc).__name__)
            else:
                attempt = 0
                self._sessions.append(session)
                self._bound.set()
                tried.set()
                log.info("smpp_bound", carrier=self.name, bind=kind)
                try:
                    await session.closed.wait()
                finally:
                    self._sessions.remove(session)
                    if not any(s.can_submit for s in self._sessions):
                        self._bound.clear()
                self._last_error = "bind lost"
                log.warning("smpp_unbound", carrier=self.name, bind=kind)
            tried.set()
            delay = random.uniform(
                0, min(self.options.reconnect_max, self.options.reconnect_first * 2**attempt)
            )
            attempt = min(attempt + 1, 30)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    # --- submits ---------------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        try:
            pdus = self._encode(request)
        except (ValueError, smpp34.SmppError) as exc:
            # Nothing was sent: this carrier cannot carry this text or sender, another may.
            return SubmitResult(
                accepted=False,
                error_code="invalid_message",
                failover=True,
                detail=f"not encodable: {type(exc).__name__}",
            )
        session = await self._session()
        if session is None:
            return SubmitResult(
                accepted=False,
                error_code="carrier_unbound",
                retryable=True,
                failover=True,
                detail="no bind up",
            )
        if self._throttle is not None:
            try:
                await self._throttle.acquire(len(pdus))
            except Exception as exc:  # Redis or the database did not answer: nothing was sent
                log.warning(
                    "smpp_throttle_failed", carrier=self.name, error_type=type(exc).__name__
                )
                return SubmitResult(
                    accepted=False,
                    error_code="carrier_busy",
                    retryable=True,
                    retry_after=1.0,
                    detail="throughput schedule unavailable",
                )
        message_id = ""
        for index, pdu in enumerate(pdus):
            outcome = await self._submit_part(session, pdu, later_part=index > 0)
            if isinstance(outcome, SubmitResult):
                return outcome
            message_id = outcome
        return SubmitResult(accepted=True, carrier_message_id=message_id)

    def _encode(self, request: SubmitRequest) -> list[bytes]:
        """Every part's submit_sm, encoded before anything is sent (sequence number 0: the
        session writes its own), so a text or sender the PDU cannot carry is known up front."""
        parts = submit_parts(request.content, self.options, next(self._references) % 256)
        source = source_address(request.sender, self.options)
        destination = request.to.lstrip("+")
        return [
            _submit_sm(
                self.options,
                source,
                destination,
                part,
                self.options.registered_delivery if part.last and request.want_receipt else 0,
            ).encode()
            for part in parts
        ]

    async def _session(self) -> Session | None:
        """The bound session with the fewest PDUs in flight, waiting up to ``bind_wait``."""
        deadline = time.monotonic() + self.options.bind_wait
        while True:
            ready = [session for session in self._sessions if session.can_submit]
            if ready:
                return min(ready, key=lambda session: session.in_flight)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._bound.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._bound.wait(), remaining)

    async def _submit_part(
        self, session: Session, pdu: bytes, *, later_part: bool
    ) -> str | SubmitResult:
        """The part's message id, or the result the whole submit ends with; raises
        :class:`OutcomeUnknown` when the SMSC may have taken it without our knowing."""
        retries = self.options.part_retries if later_part else 0
        for attempt in range(retries + 1):
            try:
                response = await session.submit(pdu)
            except SessionClosed as closed:
                return _lost(closed, later_part)
            if response.status == ESME_ROK:
                return response.message_id
            status = command_status(response.status)
            if later_part and status.outcome == "retry" and attempt < retries:
                await asyncio.sleep(min(2.0**attempt * 0.2, 5.0))
                continue
            return _refused(status.name, status.outcome, status.error_code, later_part)
        raise AssertionError("unreachable")

    # --- receipts and MO messages ---------------------------------------------------------------

    async def _on_deliver(self, deliver: smpp34.DeliverSm) -> int:
        """Store what a deliver_sm carries; the returned status answers it."""
        events = self._events
        if events is None:
            return 0x64  # ESME_RX_T_APPN: not started; the SMSC tries again later
        tlvs = {tlv.tag: tlv.value for tlv in deliver.tlvs}
        if (deliver.esm_class & 0x3C) in _RECEIPT_TYPES or _pdu.TLV_RECEIPTED_MESSAGE_ID in tlvs:
            return await self._on_receipt(events, deliver, tlvs)
        return await self._on_mo(events, deliver, tlvs)

    async def _on_receipt(
        self, events: CarrierEvents, deliver: smpp34.DeliverSm, tlvs: dict[int, bytes]
    ) -> int:
        raw = tlvs.get(_pdu.TLV_MESSAGE_PAYLOAD) or deliver.short_message
        text = decode_text(raw[:_RECEIPT_TEXT_LIMIT], deliver.data_coding, "ascii")
        try:
            receipt = receipt_from(text, tlvs)
        except NotAReceipt as exc:
            # Answered all the same: refusing it would only make the SMSC send it forever.
            log.warning("smpp_receipt_unreadable", carrier=self.name, reason=str(exc))
            return ESME_ROK
        # The receipt's source is the handset: it lets a receipt settle a submit whose answer
        # was lost in a crash (its carrier id was never recorded).
        to = _address(deliver.source_addr, deliver.source_addr_ton) or None
        await events.receipt(self.name, dataclasses.replace(receipt, to=to))
        return ESME_ROK

    async def _on_mo(
        self, events: CarrierEvents, deliver: smpp34.DeliverSm, tlvs: dict[int, bytes]
    ) -> int:
        payload = deliver.short_message
        try:
            if deliver.esm_class & ESM_UDHI:
                concat, payload = split_udh(payload)
            else:
                concat = sar_concat(tlvs)
        except ValueError:
            log.warning("smpp_mo_malformed", carrier=self.name)
            return _ESME_RINVESMCLASS
        if not payload and _pdu.TLV_MESSAGE_PAYLOAD in tlvs:
            payload = tlvs[_pdu.TLV_MESSAGE_PAYLOAD]
        sender = _address(deliver.source_addr, deliver.source_addr_ton)
        to = _address(deliver.destination_addr, deliver.dest_addr_ton) or None
        if concat is None or concat.total <= 1:
            text = decode_text(payload, deliver.data_coding, self.options.default_alphabet)
            await events.inbound(self.name, InboundMessage(sender=sender, to=to, text=text))
            return ESME_ROK
        return await self._on_part(events, sender, to, concat, payload, deliver.data_coding)

    async def _on_part(
        self,
        events: CarrierEvents,
        sender: str,
        to: str | None,
        concat: Concat,
        payload: bytes,
        data_coding: int,
    ) -> int:
        """Hold a part's answer until the whole message is stored (or ``mo_part_hold`` passes,
        for an SMSC that sends the next part only once this one is answered)."""
        now = time.monotonic()
        self._drop_stale_groups(now)
        key = (sender, to or "", concat.reference, concat.total)
        group = self._groups.get(key)
        if group is None or group.stored.done():
            group = self._groups[key] = _Group({}, data_coding, now)
        if not 1 <= concat.number <= concat.total:
            return _ESME_RINVESMCLASS
        group.parts[concat.number] = payload
        if len(group.parts) == concat.total:
            del self._groups[key]
            joined = b"".join(group.parts[number] for number in range(1, concat.total + 1))
            text = decode_text(joined, group.data_coding, self.options.default_alphabet)
            try:
                await events.inbound(self.name, InboundMessage(sender=sender, to=to, text=text))
            except Exception as exc:
                group.stored.set_exception(exc)
                raise
            group.stored.set_result(None)
            return ESME_ROK
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(group.stored), self.options.mo_part_hold)
        return ESME_ROK

    def _drop_stale_groups(self, now: float) -> None:
        limit = now - self.options.mo_reassembly_timeout
        for key in [key for key, group in self._groups.items() if group.started < limit]:
            del self._groups[key]
            log.warning("smpp_mo_incomplete", carrier=self.name)


def _submit_sm(
    options: SmppOptions,
    source: tuple[str, int, int],
    destination: str,
    part: Part,
    registered_delivery: int,
) -> smpp34.SubmitSm:
    source_addr, source_ton, source_npi = source
    return smpp34.SubmitSm(
        source_addr,
        destination,
        part.short_message,
        service_type=options.service_type,
        source_addr_ton=source_ton,
        source_addr_npi=source_npi,
        dest_addr_ton=options.dest_ton,
        dest_addr_npi=options.dest_npi,
        esm_class=part.esm_class,
        registered_delivery=registered_delivery,
        data_coding=part.data_coding,
        tlvs=list(part.tlvs),
    )


class OutcomeUnknown(Exception):
    """The bind went away after a submit_sm was written and before its response: the SMSC may
    have taken the message. Raised (not returned) so that the gateway applies the carrier's
    crash policy instead of sending it again blindly."""


def _lost(closed: SessionClosed, later_part: bool) -> SubmitResult:
    """The bind went away during a submit: retry (or fail over) if nothing was sent."""
    if not closed.sent and not later_part:
        return SubmitResult(
            accepted=False,
            error_code="carrier_unbound",
            retryable=True,
            failover=True,
            detail="bind lost before the submit",
        )
    raise OutcomeUnknown("bind lost awaiting submit_sm_resp")


def _refused(name: str, outcome: str, error_code: str, later_part: bool) -> SubmitResult:
    if later_part:
        return SubmitResult(accepted=False, error_code="partially_sent", detail=name)
    return SubmitResult(
        accepted=False,
        error_code=error_code,
        retryable=outcome in ("retry", "retry_failover"),
        failover=outcome in ("failover", "retry_failover"),
        retry_after=1.0 if outcome == "retry" else None,
        detail=name,
    )


def _address(address: str, ton: int) -> str:
    """An MO address as the gateway reads numbers: E.164 with "+" for an international one
    (more digits than a short code, whatever TON a lax SMSC gives a short code)."""
    if ton == 1 and address.isdigit() and len(address) > 8:
        return "+" + address
    return address
