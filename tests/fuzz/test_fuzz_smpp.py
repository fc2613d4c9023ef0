"""Property tests of the SMPP decoders: whatever an SMSC sends, they fail only in their own,
handled way (never an unexpected exception that would drop a bind), and what we encode decodes
back to the original text."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from datetime import UTC, datetime

import smpp34
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msgine.server.carriers.smpp import SmppCredentials, SmppOptions
from msgine.server.carriers.smpp._encoding import decode_text, sar_concat, split_udh, submit_parts
from msgine.server.carriers.smpp._pdu import PduError, decode_deliver_sm, parse_header
from msgine.server.carriers.smpp._receipts import (
    RECEIPT_STATES,
    NotAReceipt,
    parse_receipt_text,
    receipt_from,
)
from msgine.server.carriers.smpp._session import Session
from msgine.server.messages import gsm7_decode, gsm7_encode
from msgine.server.messages._text import GSM7_BASIC, GSM7_EXTENSION, sanitize

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GSM_TEXT = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=400)
TLV_TAGS = st.sampled_from([0x001E, 0x0427, 0x0424, 0x020C, 0x020E, 0x020F, 0x1400])
TLVS = st.dictionaries(TLV_TAGS, st.binary(max_size=8), max_size=4)


@FAST
@given(st.text(max_size=600))
def test_receipt_text_parsing_never_raises(text: str) -> None:
    parse_receipt_text(text)


@FAST
@given(st.text(max_size=300), TLVS)
def test_a_receipt_is_read_or_refused_cleanly(text: str, tlvs: dict[int, bytes]) -> None:
    try:
        receipt = receipt_from(text, tlvs)
    except NotAReceipt:
        return
    assert receipt.carrier_state in RECEIPT_STATES
    assert receipt.carrier_message_id


MESSAGE_IDS = st.text(alphabet="0123456789abcdefABCDEF-", min_size=1, max_size=40)


@FAST
@given(
    MESSAGE_IDS,
    st.sampled_from(sorted(RECEIPT_STATES)),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    st.text(max_size=20),
)
def test_receipt_text_round_trip(message_id: str, state: str, done: datetime, tail: str) -> None:
    stamp = done.strftime("%y%m%d%H%M%S")
    text = (
        f"id:{message_id} sub:001 dlvrd:001 submit date:{stamp[:10]} done date:{stamp} "
        f"stat:{state} err:000 text:{tail}"
    )
    receipt = receipt_from(text, {})
    assert receipt.carrier_message_id == message_id
    assert receipt.carrier_state == state
    assert receipt.status == RECEIPT_STATES[state][0]
    assert receipt.done_at == done.replace(microsecond=0, tzinfo=UTC)


@FAST
@given(st.binary(max_size=300))
def test_pdu_decoding_fails_only_with_a_pdu_error(data: bytes) -> None:
    with contextlib.suppress(PduError):
        parse_header(data[:16])
    framed = struct.pack(">IIII", 16 + len(data), 0x05, 0, 1) + data
    with contextlib.suppress(PduError):
        decode_deliver_sm(framed)


@FAST
@given(st.binary(max_size=200), TLVS, st.integers(0, 255))
def test_inbound_text_decoders_fail_only_with_value_error(
    data: bytes, tlvs: dict[int, bytes], coding: int
) -> None:
    for alphabet in ("gsm7", "latin1", "ascii"):
        assert isinstance(decode_text(data, coding, alphabet), str)
    with contextlib.suppress(ValueError):
        split_udh(data)
    with contextlib.suppress(ValueError):
        sar_concat(tlvs)


@FAST
@given(GSM_TEXT)
def test_gsm7_septets_round_trip(text: str) -> None:
    assert gsm7_decode(gsm7_encode(text)) == text


@FAST
@given(st.binary(max_size=200))
def test_gsm7_decoding_never_raises(data: bytes) -> None:
    assert isinstance(gsm7_decode(data), str)


def _reassemble(content: str, mode: str) -> str:
    options = SmppOptions(host="smsc.invalid", long_messages=mode)  # type: ignore[arg-type]
    joined = b""
    coding = 0
    for part in submit_parts(content, options, reference=7):
        coding = part.data_coding
        tlvs = {tlv.tag: tlv.value for tlv in part.tlvs}
        assert len(part.short_message) <= 254
        if part.esm_class & 0x40:
            concat, body = split_udh(part.short_message)
            assert concat is not None and concat.reference == 7
        elif 0x0424 in tlvs:
            body = tlvs[0x0424]
        else:
            body = part.short_message
        joined += body
    return decode_text(joined, coding, "gsm7")


@FAST
@given(st.text(min_size=1, max_size=1000), st.sampled_from(["udh", "sar", "payload"]))
def test_what_we_submit_decodes_to_the_original(text: str, mode: str) -> None:
    content = sanitize(text)
    if not content:
        return
    assert _reassemble(content, mode) == content


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=1, max_size=400))
async def test_a_session_survives_any_bytes_from_the_smsc(garbage: bytes) -> None:
    """A bound session fed arbitrary bytes either goes on or closes; it never raises."""
    received = asyncio.get_running_loop().create_future()

    async def smsc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readexactly(16)
        length, _, _, sequence = struct.unpack(">IIII", head)
        await reader.readexactly(length - 16)
        writer.write(struct.pack(">IIII", 17, 0x80000009, 0, sequence) + b"\x00")
        writer.write(garbage)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        received.set_result(None)

    server = await asyncio.start_server(smsc, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def answer(deliver: smpp34.DeliverSm) -> int:
        return 0

    session = Session(
        SmppOptions(host="127.0.0.1", port=port, response_timeout=1),
        SmppCredentials(system_id="a", password="b"),
        "transceiver",
        answer,
    )
    try:
        await session.open()
        await received
        await asyncio.wait_for(session.closed.wait(), 2)
    finally:
        await session.close()
        server.close()
        await server.wait_closed()
