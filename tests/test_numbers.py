"""Phone numbers: strict parsing, recipient lists, region, calling code and time zones."""

from __future__ import annotations

import subprocess
import sys

import pytest

from msgine.server.errors import InvalidPhoneNumber, InvalidRequest
from msgine.server.messages._numbers import (
    MAX_RECIPIENTS,
    calling_code_of,
    normalize_number,
    parse_recipients,
    region_of,
    timezones_of,
)

GB = "+447400123456"
UG = "+256701521269"
NYC = "+12125550123"


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        (GB, GB),
        ("+44 7400 123456", GB),
        ("+44 (0) 7400 123456", GB),
        ("+44-7400-123.456", GB),
        ("  +44 7400\u00a0123456\t", GB),
        ("+44\u20117400\u2013123456", GB),
        ("0044 7400 123456", GB),
        ("00447400123456", GB),
        (UG, UG),
        ("+256 (701) 521-269", UG),
        ("+1 (212) 555-0123", NYC),
        ("+1.212.555.0123", NYC),
    ],
)
def test_normalize_accepts_international_forms(raw: str, e164: str) -> None:
    assert normalize_number(raw) == e164


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "+",
        "07400123456",  # national form: country unknown
        "7400123456",
        "011 44 7400 123456",  # North American international prefix is not accepted
        "+447700900123",  # reserved (drama) range: parses but is not a valid number
        "+44 7400 12345",  # too short
        "+4474001234567890",
        "+0447400123456",
        "++447400123456",
        "+44 7400 123456 ext. 12",
        "+44 7400 123456;ext=12",
        "tel:+447400123456",
        "Call +447400123456 now",
        "+44 7400 l23456",
        "+٤٤٧٤٠٠١٢٣٤٥٦",  # Arabic-Indic digits
        "+ 44 7400 123456 " + " " * 100,  # hostile length
        "+44/7400/123456",
    ],
)
def test_normalize_rejects(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_number(raw)


def test_error_names_field_and_index_but_never_the_number() -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_number("+447700900123", field="to", index=3)
    error = caught.value
    assert error.code == "invalid_phone_number"
    assert error.details == {"field": "to", "index": 3}
    for shown in (str(error), error.message, repr(error.details), repr(error.args)):
        assert "7700900123" not in shown
        assert "447700" not in shown


def test_error_field_defaults() -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_number("nope")
    assert caught.value.details == {"field": "to", "index": None}
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_number("nope", field="from")
    assert caught.value.details == {"field": "from", "index": None}


def test_non_string_is_rejected_not_crashed() -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_number(447400123456)  # type: ignore[arg-type]


def test_parse_failure_does_not_chain_the_library_exception() -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_number("+999 123456789")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# --- parse_recipients -------------------------------------------------------------------------


def test_single_string() -> None:
    assert parse_recipients(UG) == [UG]


def test_comma_separated_string_strips_and_merges_duplicates_in_order() -> None:
    raw = f" {UG} , {GB},+44 7400 123456, 00256701521269 ,{NYC}"
    assert parse_recipients(raw) == [UG, GB, NYC]


def test_list_strips_and_merges_duplicates_in_order() -> None:
    assert parse_recipients([GB, f" {UG} ", "0044 7400 123456", NYC, UG]) == [GB, UG, NYC]


def test_blank_entries_are_skipped() -> None:
    assert parse_recipients(f"{UG},") == [UG]
    assert parse_recipients(f"{UG}, ,{GB}") == [UG, GB]
    assert parse_recipients([UG, "  "]) == [UG]


@pytest.mark.parametrize("to", ["", "  ", ",", " , ,", [], ["", " "]])
def test_no_recipients(to: str | list[str]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_recipients(to)
    assert caught.value.code == "invalid_request"
    assert caught.value.details == {"field": "to"}


def test_invalid_entry_names_its_index_as_sent() -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        parse_recipients(f"{UG}, ,+447700900123")
    assert caught.value.details == {"field": "to", "index": 2}
    with pytest.raises(InvalidPhoneNumber) as caught:
        parse_recipients([GB, UG, "123"])
    assert caught.value.details == {"field": "to", "index": 2}
    with pytest.raises(InvalidPhoneNumber) as caught:
        parse_recipients("not-a-number")
    assert caught.value.details == {"field": "to", "index": 0}


def test_non_string_entry_in_list() -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        parse_recipients([UG, 256701521269])  # type: ignore[list-item]
    assert caught.value.details == {"field": "to", "index": 1}


def test_wrong_type() -> None:
    with pytest.raises(InvalidRequest):
        parse_recipients({"to": UG})  # type: ignore[arg-type]


def _distinct_valid(count: int) -> list[str]:
    return [f"+2567015{n:05d}" for n in range(count)]


def test_recipient_limit() -> None:
    numbers = _distinct_valid(MAX_RECIPIENTS)
    assert parse_recipients(numbers) == numbers
    assert parse_recipients(",".join(numbers)) == numbers
    with pytest.raises(InvalidRequest) as caught:
        parse_recipients([*numbers, "+256701599999"])
    assert caught.value.details == {"field": "to", "maxItems": 1000, "count": 1001}


def test_recipient_limit_counts_entries_as_sent_before_parsing() -> None:
    # 1001 invalid entries: the limit answers first, without parsing any.
    with pytest.raises(InvalidRequest):
        parse_recipients(["bad"] * (MAX_RECIPIENTS + 1))


# --- region, calling code, time zones ---------------------------------------------------------


def test_region_and_calling_code() -> None:
    assert region_of(GB) == "GB"
    assert region_of(UG) == "UG"
    assert region_of(NYC) == "US"
    assert region_of("+14165550123") == "CA"
    assert region_of("+80012345678") is None  # non-geographic (international freephone)
    assert calling_code_of(GB) == 44
    assert calling_code_of(UG) == 256
    assert calling_code_of(NYC) == 1
    assert calling_code_of("+80012345678") == 800


def test_timezones() -> None:
    assert timezones_of(UG) == ["Africa/Kampala"]
    assert timezones_of(NYC) == ["America/New_York"]
    assert "Europe/London" in timezones_of(GB)
    assert len(timezones_of("+79161234567")) > 1  # Russian mobile: many zones


def test_timezones_unknown_is_empty() -> None:
    assert timezones_of("+80012345678") == []


def test_helpers_reject_garbage() -> None:
    with pytest.raises(InvalidPhoneNumber):
        region_of("garbage")
    with pytest.raises(InvalidPhoneNumber):
        timezones_of("+447700900123")


def test_geocoder_and_carrier_data_are_never_imported() -> None:
    code = (
        "import sys\n"
        "from msgine.server.messages import _numbers as n\n"
        "n.timezones_of('+447400123456'); n.region_of('+447400123456')\n"
        "prefixes = ('phonenumbers.geo', 'phonenumbers.carrier')\n"
        "print([m for m in sys.modules if m.startswith(prefixes)])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
