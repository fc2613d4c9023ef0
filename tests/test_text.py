"""Message text: sanitising, the length rule, encodings and segment packing."""

from __future__ import annotations

import random

import pytest

from msgine.server.errors import MessageEmpty, MessageTooLong
from msgine.server.messages._text import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_CHARACTERS,
    SegmentInfo,
    encoding_of,
    sanitize,
    segment_info,
    split_segments,
    validate_content,
)

EMOJI = "\U0001f600"  # outside the BMP: one code point, two UTF-16 units
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"


# --- sanitize ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a\r\nb", "a\nb"),
        ("a\rb", "a\nb"),
        ("a\r\r\nb", "a\n\nb"),
        ("a\tb", "a b"),
        ("a\x0bb\x0cc", "a\nb\nc"),
        ("a\x85b\u2028c\u2029d", "a\nb\nc\nd"),
        ("a\x00b\x07c\x1bd\x1fe", "abcde"),
        ("a\x7fb", "ab"),
        ("a\x80b\x9fc\x9bd", "abcd"),
        ("line one\nline two", "line one\nline two"),
    ],
)
def test_sanitize_controls_and_line_breaks(raw: str, clean: str) -> None:
    assert sanitize(raw) == clean


@pytest.mark.parametrize(
    "char",
    [
        *"\u202a\u202b\u202c\u202d\u202e",
        *"\u2066\u2067\u2068\u2069",
        "\u200e",
        "\u200f",
        "\u061c",
        "\u200b",
        "\u200c",
        "\u2060",
        "\ufeff",
        "\u00ad",
    ],
)
def test_sanitize_removes_bidi_and_invisible_characters(char: str) -> None:
    assert sanitize(f"pay{char}pal.com") == "paypal.com"


def test_bidi_override_cannot_disguise_a_link() -> None:
    # "moc.evil" shown reversed as "live.com" by RIGHT-TO-LEFT OVERRIDE.
    assert sanitize("https://\u202emoc.evil\u202c/x") == "https://moc.evil/x"


def test_lone_surrogates_are_removed_so_text_encodes_as_utf8() -> None:
    clean = sanitize("a\ud800b\udfffc")
    assert clean == "abc"
    clean.encode("utf-8")


def test_zwj_kept_inside_emoji_sequences() -> None:
    assert sanitize(FAMILY) == FAMILY
    flag = "\U0001f3f3\ufe0f\u200d\U0001f308"  # rainbow flag
    assert sanitize(flag) == flag


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("S\u200dTOP", "STOP"),  # between ASCII
        ("\u200dhello", "hello"),  # at the start
        (f"{EMOJI}\u200d", EMOJI),  # at the end
        (f"{EMOJI}\u200d a", EMOJI + " a"),  # before whitespace
        (f"{EMOJI} \u200d{EMOJI}", f"{EMOJI} {EMOJI}"),  # after whitespace
        (f"a\u200d{EMOJI}", f"a{EMOJI}"),  # ASCII on one side
        (f"{EMOJI}\u200d\u200d\u200d{EMOJI}", f"{EMOJI}\u200d{EMOJI}"),  # run collapses to one
        (f"{EMOJI}\u200d\u200b\u200d{EMOJI}", f"{EMOJI}\u200d{EMOJI}"),  # after other removals
    ],
)
def test_zwj_only_between_visible_non_ascii(raw: str, clean: str) -> None:
    assert sanitize(raw) == clean


ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"


def _tags(ascii_text: str) -> str:
    return "".join(chr(0xE0000 + ord(char)) for char in ascii_text)


def test_subdivision_flag_keeps_its_tags() -> None:
    assert sanitize(f"Go {ENGLAND}!") == f"Go {ENGLAND}!"


def test_hidden_tag_text_is_removed() -> None:
    hidden = _tags("ignore previous instructions")
    assert sanitize(f"Hello{hidden} world") == "Hello world"
    assert sanitize(f"S{_tags('x')}TOP") == "STOP"
    # Tags after a complete flag, or a flag run with non-letter tags, are stray too.
    assert sanitize(f"{ENGLAND}{hidden}") == ENGLAND
    assert sanitize(f"\U0001f3f4{hidden}\U000e007f") == "\U0001f3f4"


def test_sanitize_strips_surrounding_whitespace_only() -> None:
    assert sanitize("  \n\t hello  world \u00a0\u3000\n ") == "hello  world"


def test_sanitize_does_not_escape_html() -> None:
    text = "<b>5 > 3 & \"quotes\" 'single'</b>"
    assert sanitize(text) == text


def test_sanitize_composes_to_nfc() -> None:
    assert sanitize("Cafe\u0301") == "Caf\u00e9"
    assert encoding_of(sanitize("Cafe\u0301")) == "GSM-7"


def test_sanitize_keeps_ordinary_unicode() -> None:
    text = "Привет, 世界! ¿Qué tal? €5 — ok \U0001f44d\U0001f3fd"
    assert sanitize(text) == text


def test_sanitize_is_idempotent_on_random_input() -> None:
    rng = random.Random(20260308)
    alphabet = [
        *"ab \n\r\t€{",
        "\u200d",
        "\u200b",
        "\u202e",
        "\x00",
        "\x85",
        "\ud800",
        "\U000e0041",
        "\U0001f3f4",
        "\U000e007f",
        "e\u0301",
        EMOJI,
        "ж",
    ]
    for _ in range(500):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        once = sanitize(raw)
        assert sanitize(once) == once


# --- validate_content -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "   ", "\n\r\n\t", "\u200b\u200d\ufeff\u202e", "\x00\x01"])
def test_empty_after_sanitising_is_rejected(raw: str) -> None:
    with pytest.raises(MessageEmpty) as caught:
        validate_content(raw)
    assert caught.value.code == "message_empty"


def test_length_limit_counts_code_points_after_sanitising() -> None:
    assert validate_content("a" * MAX_CHARACTERS) == "a" * MAX_CHARACTERS
    assert validate_content(EMOJI * MAX_CHARACTERS) == EMOJI * MAX_CHARACTERS  # 2000 UTF-16 units
    # Invisible characters do not count against the limit.
    assert validate_content("a" * MAX_CHARACTERS + "\u200b" * 50) == "a" * MAX_CHARACTERS
    # CRLF counts as one character once unified.
    assert len(validate_content("a\r\n" * 499 + "aa")) == MAX_CHARACTERS


def test_too_long_is_rejected_with_lengths_but_not_the_text() -> None:
    secret = "my-one-time-code-123456 "
    text = (secret * 42)[:1001]
    with pytest.raises(MessageTooLong) as caught:
        validate_content(text)
    error = caught.value
    assert error.code == "message_too_long"
    assert error.details == {"maxLength": 1000, "length": 1001}
    assert "one-time-code" not in str(error)
    assert "one-time-code" not in repr(error.details)


def test_validate_content_returns_clean_text() -> None:
    assert validate_content("  Hi\r\nthere\u200b ") == "Hi\nthere"


# --- tables -----------------------------------------------------------------------------------


def test_gsm_tables() -> None:
    assert len(GSM7_BASIC) == 127  # 128 positions minus ESC
    assert "\x1b" not in GSM7_BASIC
    assert frozenset("\f^{}\\[~]|€") == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION
    for char in "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r":
        assert char in GSM7_BASIC
    for char in "`çÀÁÍÓÚáíóúêâ\t":
        assert char not in GSM7_BASIC
        assert char not in GSM7_EXTENSION


# --- segment_info -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SegmentInfo("GSM-7", 0, 0)),
        ("a", SegmentInfo("GSM-7", 1, 1)),
        ("a" * 160, SegmentInfo("GSM-7", 1, 160)),
        ("a" * 161, SegmentInfo("GSM-7", 2, 161)),
        ("a" * 306, SegmentInfo("GSM-7", 2, 306)),
        ("a" * 307, SegmentInfo("GSM-7", 3, 307)),
        ("a" * 459, SegmentInfo("GSM-7", 3, 459)),
        ("a" * 460, SegmentInfo("GSM-7", 4, 460)),
        ("€" * 80, SegmentInfo("GSM-7", 1, 160)),
        ("a" * 159 + "€", SegmentInfo("GSM-7", 2, 161)),
        ("a" * 158 + "€", SegmentInfo("GSM-7", 1, 160)),
        # 305 septets, but the escape pair cannot straddle septet 153/154: 152 + (2 + 151) fits
        # only because the pair moves whole; here it lands at 153/154 and moves.
        ("a" * 152 + "€" + "a" * 151, SegmentInfo("GSM-7", 2, 305)),
        ("a" * 152 + "€" + "a" * 152, SegmentInfo("GSM-7", 3, 306)),
        ("a" * 153 + "€" + "a" * 151, SegmentInfo("GSM-7", 2, 306)),
        ("{}" * 10, SegmentInfo("GSM-7", 1, 40)),
        ("ж" * 70, SegmentInfo("UCS-2", 1, 70)),
        ("ж" * 71, SegmentInfo("UCS-2", 2, 71)),
        ("ж" * 134, SegmentInfo("UCS-2", 2, 134)),
        ("ж" * 135, SegmentInfo("UCS-2", 3, 135)),
        ("a" * 69 + "ж", SegmentInfo("UCS-2", 1, 70)),
        ("€" * 69 + "ж", SegmentInfo("UCS-2", 1, 70)),  # extension chars are 1 unit in UCS-2
        (EMOJI * 35, SegmentInfo("UCS-2", 1, 70)),
        (EMOJI * 36, SegmentInfo("UCS-2", 2, 72)),
        # A surrogate pair at the 67/68 boundary moves whole to the next segment.
        ("ж" * 66 + EMOJI + "ж" * 66, SegmentInfo("UCS-2", 3, 134)),
        ("ж" * 65 + EMOJI + "ж" * 67, SegmentInfo("UCS-2", 2, 134)),
        (FAMILY, SegmentInfo("UCS-2", 1, 8)),
        ("Hello \t world", SegmentInfo("UCS-2", 1, 13)),  # TAB is not in GSM 03.38
        ("Caf\u00e9", SegmentInfo("GSM-7", 1, 4)),
        ("Cafe\u0301", SegmentInfo("UCS-2", 1, 5)),
        ("`", SegmentInfo("UCS-2", 1, 1)),
    ],
)
def test_segment_info(text: str, expected: SegmentInfo) -> None:
    assert segment_info(text) == expected


def test_encoding_is_gsm_only_if_every_character_is() -> None:
    assert encoding_of("".join(sorted(GSM7_BASIC | GSM7_EXTENSION))) == "GSM-7"
    assert encoding_of("a" * 500 + "ç") == "UCS-2"


# --- split_segments ---------------------------------------------------------------------------


def _septets(text: str) -> int:
    return sum(2 if char in GSM7_EXTENSION else 1 for char in text)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_split_segments_never_splits_escape_or_surrogate_pairs() -> None:
    parts = split_segments("a" * 152 + "€" + "a" * 152)
    assert [_septets(part) for part in parts] == [152, 153, 1]
    assert parts[1].startswith("€")
    parts = split_segments("ж" * 66 + EMOJI + "ж" * 66)
    assert [_utf16_units(part) for part in parts] == [66, 67, 1]
    assert parts[1].startswith(EMOJI)


def test_split_segments_single_and_empty() -> None:
    assert split_segments("") == []
    assert split_segments("a" * 160) == ["a" * 160]
    assert split_segments("ж" * 70) == ["ж" * 70]


def test_split_segments_agrees_with_segment_info_on_random_text() -> None:
    rng = random.Random(38)
    pools = ["aB1 .", "aB1 .€{}[]^~|\\", "aжb", f"a€ж{EMOJI}"]
    for _ in range(400):
        pool = rng.choice(pools)
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 500)))
        info = segment_info(text)
        parts = split_segments(text)
        assert "".join(parts) == text
        assert len(parts) == info.segments
        measure = _septets if info.encoding == "GSM-7" else _utf16_units
        assert sum(measure(part) for part in parts) == info.units
        limit = (153 if info.encoding == "GSM-7" else 67) if len(parts) > 1 else 10**9
        assert all(0 < measure(part) <= limit for part in parts)
        assert info.segments <= 1 or info.units > (160 if info.encoding == "GSM-7" else 70)
