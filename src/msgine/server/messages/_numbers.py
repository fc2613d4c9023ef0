"""Phone numbers: strict international parsing to E.164, recipient lists, region and time zones.

Built on ``phonenumbers`` (the full package: quiet hours need its time-zone data). Its geocoder
and carrier data are never imported: they cost ~117 MB and are not needed.

Errors name the field and the index, never the number: numbers are personal data.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import phonenumbers
from phonenumbers import timezone as phone_timezone

from msgine.server.errors import InvalidPhoneNumber, InvalidRequest

MAX_RECIPIENTS = 1000

# Longer than any formatted E.164 number with separators; bounds the work on hostile input.
_MAX_RAW_LENGTH = 64
# Separators people and address books put in numbers: whitespace (incl. no-break and thin
# spaces), ASCII and Unicode dashes, dots and parentheses, as in "+44 (0)7400-123.456".
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212.()]")
# "+" then a country code (never starting with 0) and digits. ASCII digits only: other scripts'
# digits are valid for phonenumbers but have no place in an API field. 17 digits leave room for
# a national trunk prefix written after the country code ("+44 (0)..."); phonenumbers then
# drops it and checks the real length.
_INTERNATIONAL = re.compile(r"\+[1-9][0-9]{1,16}")
_UNKNOWN_ZONE = "Etc/Unknown"


def _invalid(field: str, index: int | None) -> InvalidPhoneNumber:
    where = f"'{field}'" if index is None else f"'{field}' at index {index}"
    return InvalidPhoneNumber(
        f"The number in {where} is not a valid international number (E.164, e.g. +256...).",
        details={"field": field, "index": index},
    )


def _parse(raw: object, field: str, index: int | None) -> phonenumbers.PhoneNumber:
    if not isinstance(raw, str) or len(raw) > _MAX_RAW_LENGTH:
        raise _invalid(field, index)
    cleaned = _SEPARATORS.sub("", raw)
    if cleaned.startswith("00"):
        # "00" is the international prefix in most of the world; "011" (North America) and
        # others are not accepted: they are ambiguous without knowing where the sender dials from.
        cleaned = "+" + cleaned[2:]
    if not _INTERNATIONAL.fullmatch(cleaned):
        raise _invalid(field, index)
    try:
        number = phonenumbers.parse(cleaned, None)
    except phonenumbers.NumberParseException:
        raise _invalid(field, index) from None
    if not phonenumbers.is_valid_number(number):
        raise _invalid(field, index)
    return number


def normalize_number(raw: str, *, field: str = "to", index: int | None = None) -> str:
    """The E.164 form of an international number ("+" or "00" prefix), or InvalidPhoneNumber.

    Numbers without a country code are refused rather than guessed: a gateway serving many
    countries cannot know which one a national number belongs to.
    """
    number = _parse(raw, field, index)
    e164 = str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    _PARSED.put(e164, number)
    return e164


def parse_recipients(to: str | list[str]) -> list[str]:
    """Recipients from an E.164 string, a comma-separated string or a list, as unique E.164.

    Blank entries (e.g. after a trailing comma) are skipped; indexes in errors still count them,
    so they point at the entry as the client sent it. Duplicates merge after normalising, first
    seen first. The 1000 limit applies to the entries as sent, before any parsing, which bounds
    the work a single request can cause.
    """
    entries: list[Any]
    if isinstance(to, str):
        entries = to.split(",")
    elif isinstance(to, list):
        entries = to
    else:
        raise InvalidRequest(
            "'to' must be a phone number, a comma-separated string or a list.",
            details={"field": "to"},
        )
    present = [(i, e) for i, e in enumerate(entries) if not (isinstance(e, str) and not e.strip())]
    if not present:
        raise InvalidRequest("At least one recipient is required.", details={"field": "to"})
    if len(present) > MAX_RECIPIENTS:
        raise InvalidRequest(
            f"At most {MAX_RECIPIENTS} recipients per message.",
            details={"field": "to", "maxItems": MAX_RECIPIENTS, "count": len(present)},
        )
    unique: dict[str, None] = {}
    for index, entry in present:
        unique.setdefault(normalize_number(entry, field="to", index=index))
    return list(unique)


class _ParsedNumbers:
    """Recently validated numbers by E.164, so that the region, time zones and calling code of
    a number just normalised need no second parse (``phonenumbers`` is pure Python and slow).
    Bounded, oldest dropped first; shared by the event loop and the database writer thread."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._numbers: dict[str, phonenumbers.PhoneNumber] = {}
        self._lock = threading.Lock()

    def get(self, e164: str) -> phonenumbers.PhoneNumber | None:
        return self._numbers.get(e164)

    def put(self, e164: str, number: phonenumbers.PhoneNumber) -> None:
        with self._lock:
            if len(self._numbers) >= self._size:
                del self._numbers[next(iter(self._numbers))]
            self._numbers[e164] = number


_PARSED = _ParsedNumbers(4096)


def _parse_e164(e164: str) -> phonenumbers.PhoneNumber:
    number = _PARSED.get(e164)
    if number is None:
        number = _parse(e164, "to", None)
        _PARSED.put(e164, number)
    return number


def region_of(e164: str) -> str | None:
    """ISO 3166-1 alpha-2 region of a number; None for non-geographic numbers (e.g. +800)."""
    region = phonenumbers.region_code_for_number(_parse_e164(e164))
    if region is None or len(region) != 2 or not region.isalpha() or region == "ZZ":
        return None
    return str(region)


def calling_code_of(e164: str) -> int:
    code = _parse_e164(e164).country_code
    if code is None:  # never for a number that parsed; keeps the type exact
        raise _invalid("to", None)
    return code


def timezones_of(e164: str) -> list[str]:
    """IANA time zones the number may be in (several for many mobile ranges); [] when unknown."""
    zones = phone_timezone.time_zones_for_number(_parse_e164(e164))
    return [zone for zone in zones if zone != _UNKNOWN_ZONE]


def mask_number(number: str | None) -> str:
    """``+256701521269`` -> ``+256 70* *** 269``: the country code, the first two and the last
    three digits of the national number, the rest masked, in groups of three ("" for none).
    Enough to tell numbers apart on a screen, not to dial one; the console shows a full number
    only on an audited reveal."""
    if not number:
        return ""
    try:  # the calling code of anything number-like, valid or not (an old range, a test number)
        parsed = phonenumbers.parse(number, None)
        country = str(parsed.country_code)
        national = str(phonenumbers.national_significant_number(parsed))
    except phonenumbers.NumberParseException:
        country, national = "", "".join(ch for ch in number if ch.isdigit())
    if len(national) <= 5:
        return f"+{country} " + "*" * len(national) if country else "*" * len(national)
    head = national[:2] + "*" * (len(national) - 5)
    groups = [head[i : i + 3] for i in range(0, len(head), 3)] + [national[-3:]]
    return " ".join(([f"+{country}"] if country else []) + groups)
