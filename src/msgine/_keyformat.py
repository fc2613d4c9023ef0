"""API key format: ``msgine_{live|test}_`` + 30 random base62 characters + 6-character checksum.

The checksum (CRC32 of the random part, base62, zero-padded to 6) lets a scanner tell a real key
from a look-alike without asking the server, as GitHub's token format does. It is not a security
control: authenticity comes from the keyed hash stored by the gateway. Shared by the gateway (key
creation), the leak scanner and the SDK (early rejection of malformed keys).
"""

from __future__ import annotations

import re
import secrets
import zlib
from typing import Literal

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 30
CHECKSUM_LENGTH = 6
PREFIXES = {"live": "msgine_live_", "test": "msgine_test_"}

Mode = Literal["live", "test"]

#: Finds candidate keys in text; :func:`is_valid_key` then checks the checksum.
KEY_PATTERN = re.compile(r"msgine_(live|test)_([0-9A-Za-z]{32,})")


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, rem = divmod(number, 62)
        digits.append(BASE62[rem])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


def generate_key(mode: Mode) -> str:
    random_part = "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    return PREFIXES[mode] + random_part + checksum(random_part)


def parse_mode(key: str) -> Mode | None:
    """The key's mode when it is well formed and its checksum matches, else None."""
    match = KEY_PATTERN.fullmatch(key)
    if match is None:
        return None
    body = match.group(2)
    random_part, check = body[:-CHECKSUM_LENGTH], body[-CHECKSUM_LENGTH:]
    if checksum(random_part) != check:
        return None
    return "live" if match.group(1) == "live" else "test"


def is_valid_key(key: str) -> bool:
    return parse_mode(key) is not None


def redact(key: str) -> str:
    """Prefix and last four characters: enough to recognise a key, never enough to use it."""
    match = KEY_PATTERN.match(key)
    prefix = f"msgine_{match.group(1)}_" if match else ""
    return f"{prefix}...{key[-4:]}" if len(key) > len(prefix) + 8 else prefix + "..."
