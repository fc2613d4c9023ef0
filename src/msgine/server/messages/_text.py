"""Message text: sanitising, the length rule, GSM-7/UCS-2 encoding and segments.

Content is SMS text, never HTML: nothing is escaped. Sanitising removes what a recipient cannot
see but a handset or a downstream system acts on (control characters, bidirectional overrides
that disguise links, zero-width characters that dodge keyword filters), and lone surrogates that
would crash UTF-8 encoding later.

No maintained Python library counts SMS segments, so the GSM 03.38 tables and the packing rule
(3GPP TS 23.038 / 23.040) are written out here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from msgine.server.errors import MessageEmpty, MessageTooLong

MAX_CHARACTERS = 1000

Encoding = Literal["GSM-7", "UCS-2"]

# --- sanitising ------------------------------------------------------------------------------

_LINE_BREAKS = "\x0b\x0c\x85\u2028\u2029"  # VT, FF, NEL, LINE/PARAGRAPH SEPARATOR
_BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Invisible characters that only hide text from a reader or a filter. U+200D (ZWJ) is handled
# separately: emoji sequences such as a family or a flag variant need it.
_INVISIBLE = "\u00ad\u200b\u200c\u2060\u2061\u2062\u2063\u2064\ufeff"
_ZWJ = "\u200d"


def _build_sanitize_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    dropped = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *range(0xD800, 0xE000)]
    for code in dropped:
        table[code] = None
    for char in _BIDI_CONTROLS + _INVISIBLE:
        table[ord(char)] = None
    # Whitespace controls become their visible meaning: deleting them would glue words or
    # lines together.
    table[ord("\t")] = " "
    for char in _LINE_BREAKS:
        table[ord(char)] = "\n"
    del table[ord("\n")]
    return table


_SANITIZE_TABLE = _build_sanitize_table()
_ZWJ_RUN = re.compile(_ZWJ + "+")
# Unicode TAG characters are invisible and can smuggle whole hidden sentences. Their only
# legitimate use is a subdivision flag: BLACK FLAG, tag letters/digits, CANCEL TAG (England).
_TAGS = re.compile(
    "(\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]+\U000e007f)|[\U000e0000-\U000e007f]+"
)
_FIRST_TAG = "\U000e0000"


def _joins(char: str) -> bool:
    return ord(char) > 0x7F and not char.isspace() and char != _ZWJ


def _keep_joiner(match: re.Match[str]) -> str:
    """One ZWJ survives a run only between two visible non-ASCII characters (an emoji sequence).

    A ZWJ next to ASCII or whitespace joins nothing a handset renders; there it only hides text,
    e.g. "S\\u200dTOP".
    """
    text, start, end = match.string, match.start(), match.end()
    if start > 0 and end < len(text) and _joins(text[start - 1]) and _joins(text[end]):
        return _ZWJ
    return ""


def sanitize(text: str) -> str:
    """Remove invisible and control characters, unify line breaks to "\\n", NFC, trim.

    Rules (in order): "\\r\\n" and lone "\\r" become "\\n"; TAB becomes a space; VT, FF, NEL and
    U+2028/U+2029 become "\\n"; every other C0 control, DEL, C1 control, bidirectional control,
    zero-width or invisible formatting character and lone surrogate is removed; TAG characters
    are kept only inside a subdivision flag; ZWJ is kept (once) only between two visible
    non-ASCII characters; the result is NFC-normalised (canonically equivalent, so the meaning
    is unchanged, and "e" + combining acute counts, and encodes, as the single GSM-7 character
    "é"); leading and trailing whitespace is stripped.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_SANITIZE_TABLE)
    if text and max(text) >= _FIRST_TAG:
        text = _TAGS.sub(lambda match: match.group(1) or "", text)
    if _ZWJ in text:
        text = _ZWJ_RUN.sub(_keep_joiner, text)
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text.strip()


def validate_content(text: str) -> str:
    """Sanitise, then enforce 1..MAX_CHARACTERS characters; returns the clean text.

    Length is counted in Unicode code points after sanitising (NFC): what a person counts as
    characters for almost all text, independent of UTF-16 or of the SMS encoding. An emoji
    built from several code points (ZWJ sequences, flags) counts as several.
    """
    clean = sanitize(text)
    if not clean:
        raise MessageEmpty("The message is empty after removing invisible characters.")
    if len(clean) > MAX_CHARACTERS:
        raise MessageTooLong(
            f"The message is longer than {MAX_CHARACTERS} characters.",
            details={"maxLength": MAX_CHARACTERS, "length": len(clean)},
        )
    return clean


# --- encodings and segments ------------------------------------------------------------------

# GSM 03.38 default alphabet, positions 0x00-0x7F in order; position 0x1B is ESC, the escape to
# the extension table, not a character.
_ESC = 0x1B
_GSM7_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_BASIC = frozenset(_GSM7_TABLE.replace("\x1b", ""))
# GSM 03.38 extension table: each is sent as ESC + its code here, two septets.
_GSM7_EXTENSION_CODES = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
GSM7_EXTENSION = frozenset(_GSM7_EXTENSION_CODES)
_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

_LIMITS: dict[Encoding, tuple[int, int]] = {
    # (units in a single-part message, units per part once a concatenation header is needed)
    "GSM-7": (160, 153),
    "UCS-2": (70, 67),
}


@dataclass(frozen=True)
class SegmentInfo:
    """How a text is encoded and billed.

    ``units`` are septets for GSM-7 (an extension character counts 2) and UTF-16 code units for
    UCS-2 (a character outside the BMP, such as most emoji, counts 2).
    """

    encoding: Encoding
    segments: int
    units: int


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character is in the basic or extension table, else UCS-2."""
    return "GSM-7" if _GSM7_ALL.issuperset(text) else "UCS-2"


def _cost(char: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def _units(text: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return len(text) + sum(1 for char in text if char in GSM7_EXTENSION)
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _segment_starts(text: str, encoding: Encoding, units: int) -> list[int]:
    """Start index of each segment, packing greedily.

    A character is never split: an escape pair or a surrogate pair that would not fit moves whole
    to the next segment, leaving the previous one a unit short. That is why segments are counted
    by packing, not by dividing the total.
    """
    if not text:
        return []
    single, multi = _LIMITS[encoding]
    if units <= single:
        return [0]
    if units == len(text):  # every character costs one unit: plain division is exact
        return list(range(0, units, multi))
    starts = [0]
    used = 0
    for index, char in enumerate(text):
        cost = _cost(char, encoding)
        if used + cost > multi:
            starts.append(index)
            used = 0
        used += cost
    return starts


def segment_info(text: str) -> SegmentInfo:
    """Encoding, segment count and units of ``text`` as given (sanitise it first).

    Empty text has 0 segments and 0 units: there is nothing to send or bill, and this keeps
    ``segments == len(split_segments(text))``. The send path never sees it: validate_content
    rejects empty messages.
    """
    encoding = encoding_of(text)
    units = _units(text, encoding)
    return SegmentInfo(encoding, len(_segment_starts(text, encoding, units)), units)


def split_segments(text: str) -> list[str]:
    """The text of each segment, as packed by :func:`segment_info` (for carrier connectors)."""
    encoding = encoding_of(text)
    starts = _segment_starts(text, encoding, _units(text, encoding))
    return [text[start:end] for start, end in pairwise([*starts, len(text)])]


# --- GSM 03.38 septets (for carrier connectors) ----------------------------------------------

_GSM7_CODES = {char: code for code, char in enumerate(_GSM7_TABLE) if code != _ESC}
_GSM7_EXTENSION_CHARS = {code: char for char, code in _GSM7_EXTENSION_CODES.items()}


def gsm7_encode(text: str) -> bytes:
    """``text`` as unpacked GSM 03.38 septets, one per byte (SMPP's default alphabet): an
    extension character becomes ESC + its code. Raises ``ValueError`` for a character outside
    both tables (check :func:`encoding_of` first)."""
    out = bytearray()
    for char in text:
        code = _GSM7_CODES.get(char)
        if code is not None:
            out.append(code)
            continue
        extension = _GSM7_EXTENSION_CODES.get(char)
        if extension is None:
            raise ValueError("character outside the GSM 03.38 alphabet")
        out += bytes((_ESC, extension))
    return bytes(out)


def gsm7_decode(data: bytes) -> str:
    """Unpacked GSM 03.38 septets back to text. Never raises: a septet outside the table (the
    high bit set) or an unknown escape reads as a space or the base character, as handsets
    show them (3GPP TS 23.038: an unknown extension code displays as its default-table
    character)."""
    chars: list[str] = []
    escaped = False
    for byte in data:
        code = byte & 0x7F
        if escaped:
            escaped = False
            chars.append(_GSM7_EXTENSION_CHARS.get(code) or _GSM7_TABLE[code].replace("\x1b", " "))
        elif code == _ESC:
            escaped = True
        else:
            chars.append(_GSM7_TABLE[code])
    return "".join(chars)
