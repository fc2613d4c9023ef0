"""Phone numbers as the console shows them: masked (``+256 70* *** 269``) unless revealed.

A reveal is one number at a time, by a role holding ``numbers:reveal``, and audited. Pages
name a number by where it is stored (``kind`` and ``ref``, e.g. a message recipient's id),
never by its value, so the page carries no number until someone asks for it; each kind has a
*revealer* that reads and decrypts that one number within the user's account.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from msgine.server.crypto import Vault
from msgine.server.messages import mask_number

#: kind -> (connection, vault, account id, ref) -> the number in E.164, or None if not found.
Revealer = Callable[[sa.Connection, Vault, str, str], str | None]
_REVEALERS: dict[str, Revealer] = {}


#: The one masking rule, kept with numbers in the messages package (webhook excerpts use it too).
mask_phone = mask_number


def register_revealer(kind: str, revealer: Revealer) -> None:
    """Make numbers of ``kind`` revealable (each page module registers its own kinds)."""
    _REVEALERS[kind] = revealer


def revealer(kind: str) -> Revealer | None:
    return _REVEALERS.get(kind)


def revealable_kinds() -> list[str]:
    return sorted(_REVEALERS)
