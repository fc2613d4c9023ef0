"""Sender IDs: an alphanumeric name, a short code, or an international number.

Rules (GSM 03.40 allows an 11-character alphanumeric originator):
- alphanumeric: 1-11 ASCII letters and digits with at least one letter. Spaces are refused:
  several networks reject or mangle them, and the contract promises letters and digits only.
- short code: 3-8 digits. All-digit IDs longer than that look like a national number without its
  country code; replies would go astray, so they are refused.
- number: "+" (or "00") and an international number, returned in E.164.
"""

from __future__ import annotations

import re

from msgine.server.errors import InvalidPhoneNumber, InvalidSenderId
from msgine.server.messages._numbers import normalize_number

MAX_ALPHANUMERIC_LENGTH = 11

_ALPHANUMERIC = re.compile(r"(?=[0-9]*[A-Za-z])[A-Za-z0-9]{1,11}")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")


def _invalid() -> InvalidSenderId:
    return InvalidSenderId(
        "'from' must be 1-11 letters and digits (at least one letter), a 3-8 digit short code "
        "or an international number.",
        details={"field": "from"},
    )


def validate_sender_id(sender: str | None) -> str | None:
    """The sender ID to use, None when none is given, or InvalidSenderId."""
    if sender is None:
        return None
    if not isinstance(sender, str):
        raise _invalid()
    sender = sender.strip()
    if not sender:
        return None
    if _ALPHANUMERIC.fullmatch(sender) or _SHORT_CODE.fullmatch(sender):
        return sender
    if sender.startswith(("+", "00")):
        try:
            return normalize_number(sender, field="from")
        except InvalidPhoneNumber:
            raise _invalid() from None
    raise _invalid()
