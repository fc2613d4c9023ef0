"""SMPP 3.4 PDUs: framing, and the few small PDUs a session exchanges.

``submit_sm`` and ``deliver_sm`` (the PDUs with many fields and optional TLVs) are encoded and
decoded by ``smpp34``'s codec (Rust, fuzzed upstream). The session PDUs (binds, enquire_link,
unbind, the responses, generic_nack) are a header and at most two C-strings; they are written
here because ``smpp34`` exposes no Python encoder for them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import smpp34

GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
BIND_TRANSCEIVER = 0x00000009
ENQUIRE_LINK = 0x00000015
DATA_SM = 0x00000103
RESPONSE = 0x80000000

BIND_COMMANDS = {
    "transceiver": BIND_TRANSCEIVER,
    "transmitter": BIND_TRANSMITTER,
    "receiver": BIND_RECEIVER,
}

HEADER = struct.Struct(">IIII")
#: Larger PDUs are refused: a deliver_sm with a full message_payload is well under this.
MAX_PDU_LENGTH = 65536

#: Optional parameter (TLV) tags, SMPP 3.4 section 5.3.2.
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_MESSAGE_PAYLOAD = 0x0424
TLV_MESSAGE_STATE = 0x0427

ESME_RINVCMDID = 0x03
ESME_RSYSERR = 0x08
ESME_RX_T_APPN = 0x64


class PduError(Exception):
    """A PDU that cannot be framed or decoded; the bind is dropped."""


@dataclass(frozen=True)
class Header:
    length: int
    command_id: int
    status: int
    sequence: int


def parse_header(data: bytes) -> Header:
    """The 16-byte header; raises :class:`PduError` for a length outside 16..MAX_PDU_LENGTH."""
    if len(data) != HEADER.size:
        raise PduError("short header")
    header = Header(*HEADER.unpack(data))
    if not HEADER.size <= header.length <= MAX_PDU_LENGTH:
        raise PduError("command_length out of range")
    return header


def pdu(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    return HEADER.pack(HEADER.size + len(body), command_id, status, sequence) + body


def c_string(value: str, max_length: int) -> bytes:
    """An SMPP C-Octet String: ASCII, no NUL, at most ``max_length`` characters, NUL-ended."""
    raw = value.encode("ascii")
    if b"\x00" in raw or len(raw) > max_length:
        raise ValueError("field is not a valid SMPP C-Octet String")
    return raw + b"\x00"


def bind(kind: str, sequence: int, system_id: str, password: str, system_type: str) -> bytes:
    body = (
        c_string(system_id, 15)
        + c_string(password, 8)
        + c_string(system_type, 12)
        + bytes((0x34, 0, 0))  # interface_version 3.4, addr_ton, addr_npi
        + b"\x00"  # address_range
    )
    return pdu(BIND_COMMANDS[kind], sequence, body)


def response(command_id: int, sequence: int, status: int = 0, body: bytes = b"") -> bytes:
    return pdu(command_id | RESPONSE, sequence, body, status)


def deliver_sm_resp(sequence: int, status: int = 0) -> bytes:
    return response(DELIVER_SM, sequence, status, b"\x00")  # message_id: unused, empty


def generic_nack(sequence: int, status: int) -> bytes:
    return pdu(GENERIC_NACK, sequence, status=status)


def first_c_string(body: bytes) -> str:
    """The body's first C-Octet String (a response's message_id or system_id); empty when the
    body is empty (an error response may carry no body). Decoded leniently: an SMSC's message
    id is opaque ASCII, and a stray byte must not lose the response."""
    end = body.find(b"\x00")
    raw = body if end < 0 else body[:end]
    return raw.decode("ascii", "replace")


def decode_deliver_sm(data: bytes) -> smpp34.DeliverSm:
    """A whole deliver_sm PDU, through smpp34's codec."""
    try:
        decoded = smpp34.decode(data)
    except smpp34.SmppError as exc:
        raise PduError("undecodable deliver_sm") from exc
    if not isinstance(decoded, smpp34.DeliverSm):
        raise PduError("not a deliver_sm")
    return decoded
