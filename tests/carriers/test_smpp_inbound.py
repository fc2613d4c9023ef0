"""Receipts and MO messages over SMPP from the Node SMSC, answered only once stored."""

from __future__ import annotations

from typing import Any

import pytest
from smsc_support import MemoryEvents, Smsc, credentials, eventually, request

from msgine.server.carriers.smpp import RECEIPT_STATES, SmppCarrier

EXPECTED = {
    "DELIVRD": ("delivered", None),
    "UNDELIV": ("failed", "undeliverable"),
    "EXPIRED": ("failed", "expired"),
    "REJECTD": ("failed", "rejected"),
    "DELETED": ("failed", "deleted"),
    "UNKNOWN": ("unknown", None),
    "ACCEPTD": ("sent", None),
    "ENROUTE": ("sent", None),
}


async def start(smsc: Smsc, events: MemoryEvents, **options: Any) -> SmppCarrier:
    carrier = SmppCarrier("smsc1", smsc.options(**options), credentials())
    await carrier.start(events)
    await eventually(lambda: carrier.health().binds_up == carrier.health().binds_wanted)
    return carrier


def test_the_table_maps_every_state() -> None:
    assert RECEIPT_STATES == EXPECTED


@pytest.mark.parametrize("tlv", [False, True], ids=["text", "tlv"])
@pytest.mark.parametrize("stat", sorted(EXPECTED))
async def test_receipts_for_every_state(smsc: Smsc, stat: str, tlv: bool) -> None:
    events = MemoryEvents()
    carrier = await start(smsc, events)
    try:
        smsc.receipt("0000abcd", stat, tlv=tlv)
        await eventually(lambda: len(events.receipts) == 1)
    finally:
        await carrier.stop()
    [receipt] = events.receipts
    assert receipt.carrier_message_id == "0000abcd"
    assert (receipt.status, receipt.error_code) == EXPECTED[stat]
    assert receipt.carrier_state == stat
    assert receipt.done_at is not None
    await eventually(lambda: len(smsc.state()["delivered"]) == 1)


async def test_tlvs_win_over_the_text(smsc: Smsc) -> None:
    """receipted_message_id and message_state are authoritative when present."""
    events = MemoryEvents()
    carrier = await start(smsc, events)
    try:
        smsc.receipt("tlv-id", "UNDELIV", tlv=True, text="id:other stat:DELIVRD err:000")
        await eventually(lambda: len(events.receipts) == 1)
    finally:
        await carrier.stop()
    assert events.receipts[0].carrier_message_id == "tlv-id"
    assert events.receipts[0].status == "failed"


async def test_receipts_of_submits_over_a_receiver_bind(smsc: Smsc) -> None:
    """tx/rx mode: submits on the transmitter, their receipts come in on the receiver."""
    smsc.configure(receipts={"stat": "DELIVRD"})
    events = MemoryEvents()
    carrier = await start(smsc, events, bind_mode="transmitter_receiver")
    try:
        result = await carrier.submit(request())
        await eventually(lambda: len(events.receipts) == 1)
    finally:
        await carrier.stop()
    assert events.receipts[0].carrier_message_id == result.carrier_message_id


async def test_a_receipt_is_acknowledged_only_after_it_is_stored(smsc: Smsc) -> None:
    """The store fails twice: the SMSC gets an error answer each time and delivers it again;
    the third time it is stored, and only then acknowledged."""
    events = MemoryEvents(fail=2)
    carrier = await start(smsc, events)
    try:
        smsc.receipt("0000beef", "DELIVRD")
        await eventually(lambda: len(events.receipts) == 1)
        await eventually(lambda: len(smsc.state()["delivered"]) == 1)
    finally:
        await carrier.stop()
    state = smsc.state()
    assert state["deliverNacks"] == 2
    assert [r.carrier_message_id for r in events.receipts] == ["0000beef"]


async def test_a_receipt_unanswered_when_the_bind_drops_comes_again(smsc: Smsc) -> None:
    """Stored slowly; the connection drops before the answer: the SMSC redelivers on the next
    bind, so nothing is lost (the store sees it twice: it dedupes by carrier message id)."""
    events = MemoryEvents(delay=0.5)
    carrier = await start(smsc, events)
    try:
        smsc.receipt("0000cafe", "DELIVRD")
        await eventually(lambda: smsc.state()["pendingDeliveries"] == 0)
        smsc.drop()
        await eventually(lambda: len(smsc.state()["delivered"]) == 1)
    finally:
        await carrier.stop()
    assert smsc.state()["redeliveries"] >= 1
    assert {r.carrier_message_id for r in events.receipts} == {"0000cafe"}


async def test_unreadable_receipts_are_acknowledged_not_stored(smsc: Smsc) -> None:
    events = MemoryEvents()
    carrier = await start(smsc, events)
    try:
        smsc.receipt("x", "DELIVRD", text="garbage without fields")
        await eventually(lambda: len(smsc.state()["delivered"]) == 1)
    finally:
        await carrier.stop()
    assert events.receipts == []


GSM_LONG = "Reply STOP to stop. Café {menu} costs €5 ~ see [terms]. " * 5
UCS_LONG = "Ответ: да 😀 — Ünïcödé " * 8


@pytest.mark.parametrize("concat", [None, "udh8", "udh16", "sar", "payload"])
@pytest.mark.parametrize(("text", "coding"), [(GSM_LONG, "gsm"), (UCS_LONG, "ucs2")])
async def test_mo_messages_reassemble(
    smsc: Smsc, concat: str | None, text: str, coding: str
) -> None:
    if concat is None:
        text = text[:60]
    events = MemoryEvents()
    carrier = await start(smsc, events)
    try:
        smsc.mo("+256701000222", text, to="12345", coding=coding, concat=concat)
        await eventually(lambda: len(events.messages) == 1)
        await eventually(lambda: smsc.state()["pendingDeliveries"] == 0)
    finally:
        await carrier.stop()
    [message] = events.messages
    assert message.text == text
    assert message.sender == "+256701000222"
    assert message.to == "12345"


async def test_mo_split_inside_a_character_still_reassembles(smsc: Smsc) -> None:
    """Parts cut at odd byte counts split UCS-2 surrogate pairs and GSM escapes: the parts are
    joined as bytes before decoding, so no character is lost."""
    events = MemoryEvents()
    carrier = await start(smsc, events)
    try:
        smsc.mo("+256701000222", "😀€" * 30, coding="ucs2", concat="udh8", partBytes=33)
        smsc.mo("+256701000333", "€{}" * 40, coding="gsm", concat="sar", partBytes=51)
        await eventually(lambda: len(events.messages) == 2)
    finally:
        await carrier.stop()
    assert sorted(m.text for m in events.messages) == sorted(["😀€" * 30, "€{}" * 40])


async def test_mo_parts_are_acknowledged_after_the_whole_message_is_stored(smsc: Smsc) -> None:
    events = MemoryEvents(fail=1)
    carrier = await start(smsc, events)
    try:
        smsc.mo("+256701000222", GSM_LONG, coding="gsm", concat="udh8")
        await eventually(lambda: len(events.messages) == 1)
        await eventually(lambda: smsc.state()["pendingDeliveries"] == 0)
        await eventually(lambda: len(smsc.state()["delivered"]) >= 3)
    finally:
        await carrier.stop()
    # The first store failed: every part was answered with an error and delivered again.
    state = smsc.state()
    assert state["deliverNacks"] == 3
    assert [m.text for m in events.messages] == [GSM_LONG]
