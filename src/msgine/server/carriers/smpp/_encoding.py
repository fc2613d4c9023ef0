"""Text on the wire: submit_sm parts out, deliver_sm text in.

Out: the gateway's own segmenter splits the text (so the parts are the segments the price was
computed from); each part is GSM 03.38 septets, one per byte (SMPP's default alphabet,
unpacked: the SMSC packs them for the air), or UCS-2 (UTF-16BE). A long message travels as UDH
concatenation (IEI 0x00, 8-bit reference), as ``sar_*`` TLVs, or whole in ``message_payload``.

In: concatenated MO parts are recognised by UDH (IEI 0x00 with an 8-bit reference, 0x08 with a
16-bit one) or by ``sar_*`` TLVs, and joined as bytes before decoding, so a character split
across two parts (an escape pair, a surrogate pair) survives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import smpp34

from msgine.server.carriers.smpp import _pdu
from msgine.server.carriers.smpp._options import (
    NPI_ISDN,
    NPI_UNKNOWN,
    TON_ALPHANUMERIC,
    TON_INTERNATIONAL,
    TON_NETWORK_SPECIFIC,
    SmppOptions,
)
from msgine.server.messages import encoding_of, gsm7_decode, gsm7_encode, split_segments

ESM_UDHI = 0x40
IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
_NUMBER = re.compile(r"\+?[0-9]{9,15}")


@dataclass(frozen=True)
class Part:
    """The fields of one submit_sm that depend on the text."""

    short_message: bytes
    data_coding: int
    esm_class: int
    tlvs: tuple[smpp34.Tlv, ...]
    last: bool


def source_address(sender: str | None, options: SmppOptions) -> tuple[str, int, int]:
    """(source_addr, TON, NPI): alphanumeric 5/0, short code 3/0, a number 1/1 (without its
    "+"); the carrier's configured TON/NPI win when set. Raises ``ValueError`` for a sender
    that SMPP cannot carry (not ASCII, longer than 20 characters)."""
    sender = sender or options.default_sender or ""
    if _NUMBER.fullmatch(sender):
        address, ton, npi = sender.lstrip("+"), TON_INTERNATIONAL, NPI_ISDN
    elif _SHORT_CODE.fullmatch(sender):
        address, ton, npi = sender, TON_NETWORK_SPECIFIC, NPI_UNKNOWN
    elif sender:
        address, ton, npi = sender, TON_ALPHANUMERIC, NPI_UNKNOWN
    else:
        address, ton, npi = "", 0, 0
    if not address.isascii() or not address.isprintable() or len(address) > 20:
        # source_addr is an ASCII C-Octet String of at most 21 octets with its NUL.
        raise ValueError("sender not representable as an SMPP source_addr")
    if options.source_ton is not None:
        ton = options.source_ton
    if options.source_npi is not None:
        npi = options.source_npi
    return address, ton, npi


def submit_parts(content: str, options: SmppOptions, reference: int) -> list[Part]:
    """The submit_sm parts of ``content``; ``reference`` (0-255) ties the parts together."""
    gsm = encoding_of(content) == "GSM-7"
    coding = options.gsm7_data_coding if gsm else options.ucs2_data_coding

    def encode(text: str) -> bytes:
        return gsm7_encode(text) if gsm else text.encode("utf-16-be")

    segments = split_segments(content)
    if len(segments) <= 1:
        return [Part(encode(content), coding, 0, (), True)]
    if options.long_messages == "payload":
        payload = smpp34.Tlv(_pdu.TLV_MESSAGE_PAYLOAD, encode(content))
        return [Part(b"", coding, 0, (payload,), True)]
    total = len(segments)
    parts = []
    for number, segment in enumerate(segments, start=1):
        last = number == total
        if options.long_messages == "udh":
            udh = bytes((5, IEI_CONCAT_8, 3, reference, total, number))
            parts.append(Part(udh + encode(segment), coding, ESM_UDHI, (), last))
        else:
            sar = (
                smpp34.Tlv(_pdu.TLV_SAR_MSG_REF_NUM, reference.to_bytes(2, "big")),
                smpp34.Tlv(_pdu.TLV_SAR_TOTAL_SEGMENTS, bytes((total,))),
                smpp34.Tlv(_pdu.TLV_SAR_SEGMENT_SEQNUM, bytes((number,))),
            )
            parts.append(Part(encode(segment), coding, 0, sar, last))
    return parts


# --- inbound ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Concat:
    """Where one part sits in a concatenated message."""

    reference: int
    total: int
    number: int


def split_udh(short_message: bytes) -> tuple[Concat | None, bytes]:
    """The concatenation element of a UDH (when there is one) and the text after the UDH.
    A malformed UDH raises ``ValueError``."""
    if not short_message:
        raise ValueError("UDH indicator without a UDH")
    length = short_message[0]
    header, rest = short_message[1 : 1 + length], short_message[1 + length :]
    if len(header) != length:
        raise ValueError("UDH longer than the message")
    concat = None
    at = 0
    while at + 2 <= len(header):
        iei, size = header[at], header[at + 1]
        value = header[at + 2 : at + 2 + size]
        if len(value) != size:
            raise ValueError("UDH element longer than the UDH")
        if iei == IEI_CONCAT_8 and size == 3:
            concat = Concat(value[0], value[1], value[2])
        elif iei == IEI_CONCAT_16 and size == 4:
            concat = Concat(int.from_bytes(value[:2], "big"), value[2], value[3])
        at += 2 + size
    return concat, rest


def sar_concat(tlvs: dict[int, bytes]) -> Concat | None:
    reference = tlvs.get(_pdu.TLV_SAR_MSG_REF_NUM)
    total = tlvs.get(_pdu.TLV_SAR_TOTAL_SEGMENTS)
    number = tlvs.get(_pdu.TLV_SAR_SEGMENT_SEQNUM)
    if reference is None or total is None or number is None:
        return None
    if len(reference) != 2 or len(total) != 1 or len(number) != 1:
        raise ValueError("malformed sar_* TLV")
    return Concat(int.from_bytes(reference, "big"), total[0], number[0])


def decode_text(data: bytes, data_coding: int, default_alphabet: str) -> str:
    """Text of a deliver_sm by its data_coding; never raises (undecodable bytes show as U+FFFD).

    0: the SMSC's default alphabet (configured per carrier); 1: IA5 (ASCII); 3: Latin-1;
    8: UCS-2 (read as UTF-16BE, so a pair of surrogates becomes one character); 0xF0-0xF3: GSM
    7-bit; anything else (8-bit data, other national tables) is shown as Latin-1.
    """
    if data_coding == 0x00:
        if default_alphabet == "gsm7":
            return gsm7_decode(data)
        return data.decode("latin-1" if default_alphabet == "latin1" else "ascii", "replace")
    if data_coding == 0x01:
        return data.decode("ascii", "replace")
    if data_coding == 0x08:
        return data.decode("utf-16-be", "replace")
    if 0xF0 <= data_coding <= 0xF3:
        return gsm7_decode(data)
    return data.decode("latin-1")
