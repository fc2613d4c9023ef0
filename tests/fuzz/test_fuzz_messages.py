"""Fuzzing the parsers a send runs on untrusted input: numbers, sender ids, text and segments.

Each may only return a value or raise its documented ``DomainError`` (a 400 in the contract's
format), never anything else, and what it returns must be stable.
"""

from __future__ import annotations

from fuzz_support import attempt, fuzz
from hypothesis import given
from hypothesis import strategies as st

from msgine.server.errors import DomainError
from msgine.server.messages._numbers import normalize_number, parse_recipients
from msgine.server.messages._sender import validate_sender_id
from msgine.server.messages._text import (
    MAX_CHARACTERS,
    sanitize,
    segment_info,
    split_segments,
    validate_content,
)

PHONE_LIKE = st.from_regex(r"[+0]{0,2}[0-9 ().\-/xX#*]{0,24}", fullmatch=True)
ANY_TEXT = st.text(max_size=300)
# Text that exercises the sanitiser: controls, joiners, tags, surrogates, combining marks, emoji.
TRICKY = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.sampled_from(
            "\u200d\u200b\u202e\ufeff\U000e0067\U000e007f\u2028\r\n\t\x00\x1b€[]{}|^~\\é\u0301👍🏽👨‍👩‍👧"
        ),
    ),
    max_size=400,
)


@fuzz
@given(st.one_of(PHONE_LIKE, ANY_TEXT))
def test_numbers_normalise_to_a_fixed_point_or_refuse(raw: str) -> None:
    number, error = attempt(DomainError, normalize_number, raw)
    if error is not None:
        assert getattr(error, "code", None) == "invalid_phone_number"
        return
    assert number.startswith("+") and number[1:].isdigit()
    assert normalize_number(number) == number


@fuzz
@given(st.one_of(ANY_TEXT, st.lists(st.one_of(PHONE_LIKE, ANY_TEXT), max_size=5)))
def test_recipient_lists_parse_or_refuse(to: str | list[str]) -> None:
    numbers, error = attempt(DomainError, parse_recipients, to)
    if error is not None:
        return
    assert numbers and all(normalize_number(n) == n for n in numbers)
    assert len(set(numbers)) == len(numbers)


@fuzz
@given(st.one_of(st.none(), ANY_TEXT, st.from_regex(r"[A-Za-z0-9 ]{0,14}", fullmatch=True)))
def test_sender_ids_validate_or_refuse(sender: str | None) -> None:
    clean, error = attempt(DomainError, validate_sender_id, sender)
    if error is not None:
        assert getattr(error, "code", None) == "invalid_sender_id"
        return
    assert clean is None or validate_sender_id(clean) == clean


@fuzz
@given(TRICKY)
def test_sanitising_is_idempotent_and_leaves_no_controls(text: str) -> None:
    clean = sanitize(text)
    assert sanitize(clean) == clean
    assert not any(ord(ch) < 0x20 and ch != "\n" for ch in clean)
    assert not any(0xD800 <= ord(ch) <= 0xDFFF for ch in clean)


@fuzz
@given(st.one_of(TRICKY, st.text(min_size=990, max_size=1100)))
def test_content_validates_or_refuses_with_its_own_codes(text: str) -> None:
    clean, error = attempt(DomainError, validate_content, text)
    if error is not None:
        assert getattr(error, "code", None) in {"message_empty", "message_too_long"}
        return
    assert 1 <= len(clean) <= MAX_CHARACTERS


@fuzz
@given(st.one_of(TRICKY, st.text(alphabet="abc€[é👍\n", min_size=150, max_size=700)))
def test_segments_cover_the_text_exactly(text: str) -> None:
    clean = sanitize(text)
    info = segment_info(clean)
    parts = split_segments(clean)
    assert "".join(parts) == clean
    assert len(parts) == info.segments
    assert info.encoding in {"GSM-7", "UCS-2"}
    single, multi = (160, 153) if info.encoding == "GSM-7" else (70, 67)
    for part in parts:
        assert segment_info(part).units <= (single if len(parts) == 1 else multi)
        if info.encoding == "UCS-2" and part:
            assert not 0xD800 <= ord(part[-1]) <= 0xDBFF  # no split surrogate pair
