"""The gateway's side of :class:`CarrierEvents`: receipts and inbound messages, stored durably.

Each coroutine returns only after its transaction commits, so a connector acknowledges to its
carrier after the write: a crash in between loses nothing (the carrier redelivers, and a
redelivered receipt or inbound message is recognised by the carrier's message id).

A receipt is matched to a recipient by (carrier, carrier message id). One that arrives before
our own record of the submit (the carrier answered the receipt faster than our commit) is kept
in ``carrier_receipts`` and applied in the transaction that records the submit. One for a
recipient whose submit outcome was lost in a crash (status ``unknown``, no carrier id) is
matched by the destination number the receipt names, when the connector provides it.

Most receipts of a fast carrier come before the worker's record of their submit (it writes a
whole batch's outcomes at once). The worker says which carrier ids it is recording (``expect``,
then ``recorded``); a receipt for one of them waits for that write, then matches directly,
instead of being kept and applied again (two writes and two lookups more per message). It
waits in memory only, and at most ``RECORD_WAIT``: its deliver_sm is still answered only
after the receipt itself is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from msgine.server import events
from msgine.server.accounts import list_accounts
from msgine.server.carriers import _metrics
from msgine.server.carriers._base import InboundMessage, Receipt
from msgine.server.compliance import OPT_OUT, Pricing, inbound_handler, store_inbound, suppress
from msgine.server.crypto import Vault
from msgine.server.errors import DomainError
from msgine.server.messages import (
    Outgoing,
    load_outgoing,
    normalize_number,
    record_status,
    sanitize,
)
from msgine.server.runtime import Runtime
from msgine.server.storage import Direct, carrier_receipts, carriers, inbound_messages, recipients

_BY_CARRIER_ID = Direct(
    sa.select(recipients.c.id, recipients.c.submitted_at, recipients.c.sent_at).where(
        recipients.c.carrier == sa.bindparam("carrier"),
        recipients.c.carrier_message_id == sa.bindparam("cmid"),
    )
)
_UNKNOWN = Direct(
    sa.select(
        recipients.c.id,
        recipients.c.account_id,
        recipients.c.phone_index,
        recipients.c.submitted_at,
        recipients.c.sent_at,
    ).where(
        recipients.c.carrier == sa.bindparam("carrier"),
        recipients.c.status == "unknown",
        recipients.c.carrier_message_id.is_(None),
    )
)
_EARLY = Direct(
    sa.select(carrier_receipts)
    .where(
        carrier_receipts.c.carrier == sa.bindparam("carrier"),
        carrier_receipts.c.carrier_message_id == sa.bindparam("cmid"),
    )
    .order_by(carrier_receipts.c.id)
)
_DROP_EARLY = Direct(
    sa.delete(carrier_receipts).where(carrier_receipts.c.id == sa.bindparam("receipt_id"))
)
_KEEP_EARLY = Direct(carrier_receipts.insert())
_SEEN_INBOUND = Direct(
    sa.select(inbound_messages.c.id).where(
        inbound_messages.c.carrier == sa.bindparam("carrier"),
        inbound_messages.c.carrier_message_id == sa.bindparam("cmid"),
    )
)


def _settle(
    conn: sa.Connection,
    vault: Vault,
    carrier: str,
    recipient_id: str,
    receipt: Receipt,
    now: datetime,
) -> None:
    """Move the recipient as the receipt says. A carrier that itself does not know changes
    nothing but the history."""
    if receipt.opted_out and receipt.status == "failed":
        _suppress_recipient(conn, vault, carrier, recipient_id, now)
    record_status(
        conn,
        vault,
        recipient_id,
        "sent" if receipt.status == "unknown" else receipt.status,
        now=now,
        error_code=receipt.error_code,
        carrier_message_id=receipt.carrier_message_id,
        carrier=carrier,
        detail=f"receipt: {receipt.carrier_state}"[:200],
    )


#: Our error code of a recipient the carrier says opted out.
OPTED_OUT_ERROR = "recipient_opted_out"


def suppress_opted_out(
    conn: sa.Connection, vault: Vault, out: Outgoing, carrier: str, now: datetime
) -> None:
    """The recipient's number on its account's suppression list (of its mode): the carrier
    says the recipient opted out with it, so no later message should try. A number erased
    since is left alone (the erasure kept its block)."""
    if out.to is None:
        return
    suppress(
        conn,
        vault,
        account_id=out.account_id,
        mode=out.mode,
        phone=out.to,
        phone_index=out.phone_index,
        reason=OPT_OUT,
        source=f"carrier:{carrier}",
        now=now,
    )


def _suppress_recipient(
    conn: sa.Connection, vault: Vault, carrier: str, recipient_id: str, now: datetime
) -> None:
    out = load_outgoing(conn, vault, recipient_id)
    if out is not None:
        suppress_opted_out(conn, vault, out, carrier, now)


def apply_receipt(
    conn: sa.Connection, vault: Vault, carrier: str, receipt: Receipt, now: datetime
) -> tuple[str, datetime | None]:
    """Apply (or keep) one receipt; returns how it matched and when its recipient was sent."""
    found = _BY_CARRIER_ID.first(conn, {"carrier": carrier, "cmid": receipt.carrier_message_id})
    match = "matched"
    if found is None and receipt.to is not None:
        found = _unknown_by_number(conn, vault, carrier, receipt.to)
        match = "settled"
    if found is None:
        _KEEP_EARLY.execute(
            conn,
            {
                "carrier": carrier,
                "carrier_message_id": receipt.carrier_message_id,
                "status": receipt.status,
                "carrier_state": receipt.carrier_state[:32],
                "error_code": receipt.error_code,
                "done_at": receipt.done_at,
                "received_at": now,
            },
        )
        return "early", None
    _settle(conn, vault, carrier, found["id"], receipt, now)
    return match, found["submitted_at"] or found["sent_at"]


def _unknown_by_number(
    conn: sa.Connection, vault: Vault, carrier: str, number: str
) -> dict[str, Any] | None:
    """The one recipient of this carrier whose outcome is unknown and whose number the receipt
    names (compared by each account's blind index); None unless exactly one matches."""
    try:
        phone = normalize_number(number, field="to")
    except DomainError:
        return None
    matches = [
        row
        for row in _UNKNOWN.all(conn, {"carrier": carrier})
        if row["phone_index"] == vault.blind_index(row["account_id"], phone)
    ]
    return matches[0] if len(matches) == 1 else None


def apply_early_receipts(
    conn: sa.Connection,
    vault: Vault,
    carrier: str,
    carrier_message_id: str,
    recipient_id: str,
    now: datetime,
) -> int:
    """In the transaction recording an accepted submit: the receipts that came before it."""
    early = _EARLY.all(conn, {"carrier": carrier, "cmid": carrier_message_id})
    for row in early:
        receipt = Receipt(
            carrier_message_id=carrier_message_id,
            status=row["status"],
            carrier_state=row["carrier_state"],
            error_code=row["error_code"],
            done_at=row["done_at"],
            # Kept without the flag: a stored opt-out reads back from its error code.
            opted_out=row["error_code"] == OPTED_OUT_ERROR,
        )
        _settle(conn, vault, carrier, recipient_id, receipt, now)
        _DROP_EARLY.execute(conn, {"receipt_id": row["id"]})
    return len(early)


#: How long a receipt no submit ever claimed is kept (a carrier answering for messages another
#: system sent, or a submit whose record never landed); then it is purged.
EARLY_RECEIPT_TTL = timedelta(days=7)


def purge_unclaimed_receipts(conn: sa.Connection, now: datetime) -> int:
    """Drop receipts no submit claimed within ``EARLY_RECEIPT_TTL``; returns how many."""
    done = conn.execute(
        sa.delete(carrier_receipts).where(carrier_receipts.c.received_at < now - EARLY_RECEIPT_TTL)
    )
    return int(done.rowcount or 0)


InboundHandler = Callable[[sa.Connection, Vault, dict[str, Any], datetime], dict[str, Any]]


def receive_inbound(
    conn: sa.Connection,
    vault: Vault,
    carrier: str,
    message: InboundMessage,
    now: datetime,
    handlers: list[InboundHandler],
) -> str | None:
    """Store a mobile-originated message for the carrier's inbound account and run the inbound
    pipeline (the message.received webhook, STOP/START/HELP). A redelivery (same carrier id)
    is stored once. Returns the inbound id, or None for a redelivery."""
    if message.carrier_message_id is not None and _SEEN_INBOUND.first(
        conn, {"carrier": carrier, "cmid": message.carrier_message_id}
    ):
        return None
    account_id = _inbound_account(conn, carrier)
    try:
        phone = normalize_number(message.sender, field="from")
    except DomainError:  # an alphanumeric or short-code sender: kept as the carrier gave it
        phone = message.sender.strip()[:32]
    inbound = store_inbound(
        conn,
        vault,
        account_id,
        phone,
        message.to,
        sanitize(message.text),
        now,
        "live",
        carrier=carrier,
        carrier_message_id=message.carrier_message_id,
    )
    for handler in handlers:
        handler(conn, vault, inbound, now)
    return str(inbound["id"])


def _inbound_account(conn: sa.Connection, carrier: str) -> str:
    """The carrier's inbound account, or the gateway's first account."""
    configured = conn.execute(
        sa.select(carriers.c.inbound_account_id).where(carriers.c.name == carrier)
    ).scalar()
    if configured:
        return str(configured)
    found = list_accounts(conn)
    if not found:
        raise LookupError("no account to receive inbound messages")
    return str(found[0]["id"])


#: How long a receipt waits for the record of its submit before it is kept as an early one.
RECORD_WAIT = 5.0


class DurableEvents:
    """The :class:`CarrierEvents` sink a worker hands to its connected carriers."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        #: (carrier, carrier message id) of accepted submits whose record is being written.
        self._recording: dict[tuple[str, str], asyncio.Future[None]] = {}
        settings = runtime.settings
        pricing = Pricing(settings.price_per_segment, settings.currency)
        # The same pipeline as the API's inbound route: the webhook event, then keywords.
        self._handlers: list[InboundHandler] = [events.message_received, inbound_handler(pricing)]

    def expect(self, carrier: str, carrier_message_id: str) -> None:
        """An accepted submit whose record the worker is about to write: its receipt waits
        for ``recorded``. Called as the submit returns, before the receipt is read."""
        key = (carrier, carrier_message_id)
        if key not in self._recording:
            self._recording[key] = asyncio.get_running_loop().create_future()

    def recorded(self, keys: list[tuple[str, str]]) -> None:
        """The write of these submits ended (committed or not): their receipts go ahead."""
        for key in keys:
            done = self._recording.pop(key, None)
            if done is not None and not done.done():
                done.set_result(None)

    async def receipt(self, carrier: str, receipt: Receipt) -> None:
        runtime = self._runtime
        pending = self._recording.get((carrier, receipt.carrier_message_id))
        if pending is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pending), RECORD_WAIT)
        now = runtime.now()
        match, sent_at = await runtime.db.awrite(
            lambda conn: apply_receipt(conn, runtime.vault, carrier, receipt, now)
        )
        self._observe(carrier, receipt, match, sent_at, now)

    async def store(
        self,
        carrier: str,
        receipts: Sequence[Receipt],
        inbound: Sequence[InboundMessage],
        guard: Callable[[sa.Connection], None] | None = None,
    ) -> None:
        """Several items in one transaction, after ``guard`` (which may raise to store
        nothing: a callback's replay check)."""
        runtime = self._runtime
        now = runtime.now()

        def write(conn: sa.Connection) -> tuple[list[tuple[str, datetime | None]], int]:
            if guard is not None:
                guard(conn)
            matched = [apply_receipt(conn, runtime.vault, carrier, r, now) for r in receipts]
            stored = [
                receive_inbound(conn, runtime.vault, carrier, m, now, self._handlers)
                for m in inbound
            ]
            return matched, sum(1 for s in stored if s is not None)

        matched, stored = await runtime.db.awrite(write)
        for receipt, (match, sent_at) in zip(receipts, matched, strict=True):
            self._observe(carrier, receipt, match, sent_at, now)
        if stored:
            _metrics.INBOUND.labels(carrier).inc(stored)

    def _observe(
        self, carrier: str, receipt: Receipt, match: str, sent_at: datetime | None, now: datetime
    ) -> None:
        _metrics.RECEIPTS.labels(carrier, receipt.status, match).inc()
        if sent_at is not None and receipt.status in ("delivered", "failed"):
            _metrics.RECEIPT_SECONDS.labels(carrier).observe(
                max((now - sent_at).total_seconds(), 0.0)
            )

    async def inbound(self, carrier: str, message: InboundMessage) -> None:
        runtime = self._runtime
        now = runtime.now()
        stored = await runtime.db.awrite(
            lambda conn: receive_inbound(conn, runtime.vault, carrier, message, now, self._handlers)
        )
        if stored is not None:
            _metrics.INBOUND.labels(carrier).inc()
