"""The SMPP connector against the Node SMSC (npm ``smpp``): binds, submits, statuses, text."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from smsc_support import TO, MemoryEvents, Smsc, credentials, eventually, request

from msgine.server.carriers import ConnectedCarrier
from msgine.server.carriers.smpp import COMMAND_STATUSES, OutcomeUnknown, SmppCarrier
from msgine.server.messages._text import segment_info


@asynccontextmanager
async def running(
    smsc: Smsc, events: MemoryEvents | None = None, password: str | None = None, **options: Any
) -> AsyncIterator[SmppCarrier]:
    carrier = SmppCarrier(
        "smsc1",
        smsc.options(**options),
        credentials(password) if password else credentials(),
    )
    await carrier.start(events or MemoryEvents())
    try:
        yield carrier
    finally:
        await carrier.stop()


async def bound(carrier: SmppCarrier, binds: int = 1) -> None:
    await eventually(lambda: carrier.health().binds_up == binds)


async def test_implements_the_connected_carrier_protocol(smsc: Smsc) -> None:
    async with running(smsc) as carrier:
        assert isinstance(carrier, ConnectedCarrier)


async def test_submit_reaches_the_smsc_with_its_message_id(smsc: Smsc) -> None:
    async with running(smsc) as carrier:
        result = await carrier.submit(request("Hello there"))
    assert result.accepted
    state = smsc.state()
    [message] = state["messages"]
    assert message["text"] == "Hello there"
    assert message["dest"] == TO.lstrip("+")
    assert message["messageIds"] == [result.carrier_message_id]
    [submit] = state["submits"]
    assert submit["registeredDelivery"] == 1
    assert state["binds"][0]["kind"] == "transceiver"


async def test_bind_refused_is_reported_with_its_command_status(smsc: Smsc) -> None:
    async with running(smsc, password="wrong", bind_wait=0.2) as carrier:
        await eventually(lambda: smsc.state()["refusedBinds"] >= 2)
        health = carrier.health()
        result = await carrier.submit(request())
    assert health.state == "down"
    assert health.detail == "bind refused: ESME_RINVPASWD"
    assert "wrong" not in repr(health)
    assert not result.accepted
    assert result.error_code == "carrier_unbound"
    assert result.failover and result.retryable
    assert smsc.state()["submits"] == []


async def test_refused_binds_back_off(smsc: Smsc) -> None:
    """Reconnects wait (exponential backoff with jitter), they do not hammer the SMSC."""
    smsc.configure(refuseBinds=0x0D)
    async with running(smsc, reconnect_first=0.1, reconnect_max=0.4) as carrier:
        await asyncio.sleep(1.5)
        assert carrier.health().detail == "bind refused: ESME_RBINDFAIL"
    attempts = smsc.state()["refusedBinds"]
    # Without backoff a local SMSC refuses hundreds of binds in 1.5 s; with it a handful.
    assert 2 <= attempts <= 20


async def test_reconnects_after_the_smsc_drops_the_connection(smsc: Smsc) -> None:
    async with running(smsc) as carrier:
        await bound(carrier)
        assert (await carrier.submit(request(key="a"))).accepted
        smsc.drop()
        await eventually(lambda: len([b for b in smsc.state()["binds"] if b["ok"]]) == 2)
        await bound(carrier)
        assert (await carrier.submit(request(key="b"))).accepted
    assert len(smsc.state()["messages"]) == 2


async def test_several_binds_and_separate_transmitter_and_receiver(smsc: Smsc) -> None:
    async with running(smsc, bind_mode="transmitter_receiver", binds=2, receivers=1) as carrier:
        await bound(carrier, 3)
        assert carrier.health().state == "up"
        results = await asyncio.gather(*(carrier.submit(request(key=str(i))) for i in range(20)))
    assert all(result.accepted for result in results)
    state = smsc.state()
    assert sorted(b["kind"] for b in state["binds"]) == ["receiver", "transmitter", "transmitter"]
    # Submits went over both transmitters, none over the receiver.
    assert len({submit["session"] for submit in state["submits"]}) == 2


async def test_window_bounds_pdus_in_flight(smsc: Smsc) -> None:
    smsc.configure(responseDelayMs=100)
    async with running(smsc, window=3) as carrier:
        await bound(carrier)
        results = await asyncio.gather(*(carrier.submit(request(key=str(i))) for i in range(15)))
    assert all(result.accepted for result in results)
    assert smsc.state()["maxInFlight"] == 3


async def test_enquire_link_keeps_the_bind_checked(smsc: Smsc) -> None:
    async with running(smsc, enquire_link_interval=0.1) as carrier:
        await bound(carrier)
        await eventually(lambda: smsc.state()["enquireLinks"] >= 3)


async def test_stop_unbinds(smsc: Smsc) -> None:
    async with running(smsc) as carrier:
        await bound(carrier)
    await eventually(lambda: smsc.state()["unbinds"] == 1)


STATUS_CLASSES: list[tuple[int, Callable[[Any], bool]]] = [
    # throttled and queue full: back off and retry here
    (0x58, lambda r: r.retryable and not r.failover and r.retry_after and r.detail),
    (0x14, lambda r: r.retryable and not r.failover and r.error_code == "queue_full"),
    # invalid destination: fails for good
    (0x0B, lambda r: not r.retryable and not r.failover and r.error_code == "invalid_destination"),
    # this carrier refuses the sender: the next carrier should take it
    (0x0A, lambda r: r.failover and not r.retryable and r.error_code == "invalid_sender"),
    # system error: the next carrier, or later here
    (0x08, lambda r: r.failover and r.retryable and r.error_code == "carrier_error"),
    # a vendor status the table does not know: as a system error
    (0x400, lambda r: r.failover and r.retryable and r.detail == "0x00000400"),
]


@pytest.mark.parametrize(("status", "expected"), STATUS_CLASSES)
async def test_every_command_status_class(smsc: Smsc, status: int, expected: Any) -> None:
    smsc.configure(submitStatus=status)
    async with running(smsc) as carrier:
        result = await carrier.submit(request())
    assert not result.accepted
    assert expected(result)
    if status in COMMAND_STATUSES:
        assert result.detail == COMMAND_STATUSES[status].name


async def test_throttled_then_accepted_on_retry(smsc: Smsc) -> None:
    smsc.configure(throttleFirst=1)
    async with running(smsc) as carrier:
        first = await carrier.submit(request())
        second = await carrier.submit(request())
    assert first.detail == "ESME_RTHROTTLED" and first.retryable
    assert second.accepted


GSM_LONG = "The quick brown fox [jumps] over the lazy dog for €5 {again}. " * 6
UCS_LONG = "Привет, мир! Ünïcödé text with an emoji 😀 in the middle. " * 4


@pytest.mark.parametrize("mode", ["udh", "sar", "payload"])
@pytest.mark.parametrize("text", [GSM_LONG, UCS_LONG], ids=["gsm7", "ucs2"])
async def test_long_messages_reassemble_at_the_smsc(smsc: Smsc, mode: str, text: str) -> None:
    info = segment_info(text)
    assert info.segments > 2
    async with running(smsc, long_messages=mode) as carrier:
        result = await carrier.submit(request(text))
    assert result.accepted
    state = smsc.state()
    [message] = state["messages"]
    assert message["text"] == text
    assert message["dataCoding"] == (0 if info.encoding == "GSM-7" else 8)
    if mode == "payload":
        assert len(state["submits"]) == 1
    else:
        assert message["parts"] == info.segments
        assert message["mode"] == mode
        # Only the last part asks for a receipt; its id is the message's.
        assert [s["registeredDelivery"] for s in state["submits"]][-1] == 1
        assert {s["registeredDelivery"] for s in state["submits"][:-1]} == {0}
        assert result.carrier_message_id == message["messageIds"][-1]


@pytest.mark.parametrize(
    ("sender", "address", "ton", "npi"),
    [("MsGine", "MsGine", 5, 0), ("12345", "12345", 3, 0), ("+256701000111", "256701000111", 1, 1)],
)
async def test_source_ton_npi_follow_the_sender(
    smsc: Smsc, sender: str, address: str, ton: int, npi: int
) -> None:
    async with running(smsc) as carrier:
        assert (await carrier.submit(request(sender=sender))).accepted
    [submit] = smsc.state()["submits"]
    assert (submit["source"], submit["sourceTon"], submit["sourceNpi"]) == (address, ton, npi)
    assert (submit["destTon"], submit["destNpi"]) == (1, 1)


async def test_configured_source_ton_npi_win(smsc: Smsc) -> None:
    async with running(smsc, source_ton=2, source_npi=8) as carrier:
        assert (await carrier.submit(request(sender="MsGine"))).accepted
    [submit] = smsc.state()["submits"]
    assert (submit["sourceTon"], submit["sourceNpi"]) == (2, 8)


async def test_no_receipt_asked_when_not_wanted(smsc: Smsc) -> None:
    async with running(smsc) as carrier:
        assert (await carrier.submit(request(want_receipt=False))).accepted
    assert smsc.state()["submits"][0]["registeredDelivery"] == 0


async def test_a_submit_lost_in_flight_raises_outcome_unknown(smsc: Smsc) -> None:
    """The SMSC got the submit_sm but the bind dropped before its response: the connector
    cannot know whether it was taken, so it raises, and the gateway's crash policy decides."""
    smsc.configure(silent=True)
    async with running(smsc) as carrier:
        await bound(carrier)
        submit = asyncio.create_task(carrier.submit(request()))
        await eventually(lambda: len(smsc.state()["submits"]) == 1)
        smsc.drop()
        with pytest.raises(OutcomeUnknown):
            await submit


async def test_a_submit_unanswered_in_time_raises_outcome_unknown(smsc: Smsc) -> None:
    smsc.configure(silent=True)
    async with running(smsc, response_timeout=0.3) as carrier:
        await bound(carrier)
        with pytest.raises(OutcomeUnknown):
            await carrier.submit(request())
        # The silent SMSC's bind was dropped and bound again.
        await eventually(lambda: len([b for b in smsc.state()["binds"] if b["ok"]]) == 2)


async def test_credentials_show_nowhere(smsc: Smsc, capsys: pytest.CaptureFixture[str]) -> None:
    """A refused bind is logged and shown in health with its status, never with the system_id
    or the password; nor do the models' or the carrier's reprs carry them."""
    from msgine.server.carriers.smpp import SmppCredentials

    secret = SmppCredentials(system_id="sysLeak9", password="pwLeak77")
    carrier = SmppCarrier("smsc1", smsc.options(bind_wait=0.2), secret)
    await carrier.start(MemoryEvents())
    try:
        await eventually(lambda: smsc.state()["refusedBinds"] >= 1)
        shown = [repr(secret), str(secret), repr(carrier), repr(carrier.health())]
    finally:
        await carrier.stop()
    captured = capsys.readouterr()
    shown += [captured.out, captured.err, repr(carrier.options)]
    assert "smpp_bind_refused" in captured.out + captured.err  # the log line exists
    for text in shown:
        assert "pwLeak77" not in text
        assert "sysLeak9" not in text


class _BrokenSchedule:
    async def reserve(self, count: int) -> float:
        raise ConnectionError("schedule store down")

    async def aclose(self) -> None:
        return None


async def test_an_unavailable_throughput_schedule_sends_nothing_and_retries(smsc: Smsc) -> None:
    """Raising would read as "outcome unknown"; nothing went out, so it is a plain retry."""
    from msgine.server.carriers._throttle import Throttle

    carrier = SmppCarrier(
        "smsc1", smsc.options(), credentials(), throttle=Throttle(10, _BrokenSchedule())
    )
    await carrier.start(MemoryEvents())
    try:
        result = await carrier.submit(request())
    finally:
        await carrier.stop()
    assert (result.accepted, result.retryable, result.error_code) == (False, True, "carrier_busy")
    assert smsc.state()["submits"] == []


async def test_a_sender_the_pdu_cannot_carry_is_refused_before_sending(smsc: Smsc) -> None:
    async with running(smsc, default_sender="x" * 20) as carrier:
        result = await carrier.submit(request(sender="Ünïcødé"))
    assert (result.accepted, result.failover, result.retryable) == (False, True, False)
    assert result.error_code == "invalid_message"
    assert smsc.state()["submits"] == []
