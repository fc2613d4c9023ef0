"""Sender IDs: alphanumeric names, short codes and international numbers."""

from __future__ import annotations

import pytest

from msgine.server.errors import InvalidSenderId
from msgine.server.messages._sender import validate_sender_id


@pytest.mark.parametrize("sender", [None, "", "   "])
def test_absent_sender(sender: str | None) -> None:
    assert validate_sender_id(sender) is None


@pytest.mark.parametrize(
    "sender", ["MyApp", "A", "ABCDEFGHIJK", "Shop24", "24Shop", "a1b2c3d4e5f", "1234567890A"]
)
def test_alphanumeric(sender: str) -> None:
    assert validate_sender_id(sender) == sender


def test_surrounding_whitespace_is_trimmed() -> None:
    assert validate_sender_id("  MyApp ") == "MyApp"


@pytest.mark.parametrize("sender", ["123", "72345", "12345678"])
def test_short_codes(sender: str) -> None:
    assert validate_sender_id(sender) == sender


@pytest.mark.parametrize(
    ("sender", "e164"),
    [
        ("+256701521269", "+256701521269"),
        ("+44 7400 123456", "+447400123456"),
        ("0044 7400 123456", "+447400123456"),
    ],
)
def test_numbers_are_normalised(sender: str, e164: str) -> None:
    assert validate_sender_id(sender) == e164


@pytest.mark.parametrize(
    "sender",
    [
        "ABCDEFGHIJKL",  # 12 characters
        "My App",  # space
        "My-App",
        "My_App",
        "MyApp!",
        "Café",  # non-ASCII letter
        "\uff2d\uff59\uff21\uff50\uff50",  # full-width "MyApp"
        "My\u200bApp",  # zero-width space
        "My\nApp",
        "12",  # too short for a short code
        "123456789",  # all digits, national-number length
        "07400123456",
        "+447700900123",  # invalid number
        "+",
        "+44 7400 123456 MyApp",
    ],
)
def test_invalid(sender: str) -> None:
    with pytest.raises(InvalidSenderId) as caught:
        validate_sender_id(sender)
    error = caught.value
    assert error.code == "invalid_sender_id"
    assert error.details == {"field": "from"}


def test_invalid_number_error_does_not_leak_the_number() -> None:
    with pytest.raises(InvalidSenderId) as caught:
        validate_sender_id("+447700900123")
    error = caught.value
    assert "7700900123" not in str(error)
    assert "7700900123" not in repr(error.details)
    assert error.__cause__ is None


def test_non_string() -> None:
    with pytest.raises(InvalidSenderId):
        validate_sender_id(12345)  # type: ignore[arg-type]
