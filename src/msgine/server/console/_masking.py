"""Phone numbers as the console shows them: masked (``+256 70* *** 269``) unless revealed.

A reveal is one number at a time, by a role holding ``numbers:reveal``, and audited. Pages
name a number by where it is stored (``kind`` and ``ref``, e.g. a message recipient's id),
never by its value, so the page carries no number until someone asks for it; each kind has a
*revealer* that reads and decrypts that one number within the user's account.
"""

from __future__ import annotations

from collections.abc import Callable

import phonenumbers
import sqlalchemy as sa

from msgine.server.crypto import Vault

#: kind -> (connection, vault, account id, ref) -> the number in E.164, or None if not found.
Revealer = Callable[[sa.Connection, Vault, str, str], str | None]
_REVEALERS: dict[str, Revealer] = {}


def mask_phone(number: str | None) -> str:
    """``+256701521269`` -> ``+256 70* *** 269``: the country code, the first two and the
    last three digits of the national number; the rest masked, in groups of three."""
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, None)
        country, national = (
            str(parsed.country_code),
            phonenumbers.national_significant_number(parsed),
        )
    except phonenumbers.NumberParseException:
        digits = "".join(ch for ch in number if ch.isdigit())
        country, national = "", digits
    if len(national) <= 5:
        return f"+{country} " + "*" * len(national) if country else "*" * len(national)
    head = national[:2] + "*" * (len(national) - 5)
    groups = [head[i : i + 3] for i in range(0, len(head), 3)] + [national[-3:]]
    return " ".join(([f"+{country}"] if country else []) + groups)


def register_revealer(kind: str, revealer: Revealer) -> None:
    """Make numbers of ``kind`` revealable (each page module registers its own kinds)."""
    _REVEALERS[kind] = revealer


def revealer(kind: str) -> Revealer | None:
    return _REVEALERS.get(kind)


def revealable_kinds() -> list[str]:
    return sorted(_REVEALERS)
