"""Public identifiers: ``prefix_`` + time-ordered, unguessable base62.

Time-ordered so new rows land at the end of B-tree indexes; 14 random characters (~83 bits) so an
id cannot be guessed (access control still checks the account on every lookup).
"""

from __future__ import annotations

import time

from msgine._keyformat import BASE62, _base62
from msgine.server._random import random_bytes

RANDOM_CHARS = 14


# The last millisecond's stamp: a send makes several ids within one millisecond.
_last_stamp: tuple[int, str] = (-1, "")


def new_id(prefix: str) -> str:
    global _last_stamp
    millis = time.time_ns() // 1_000_000
    last = _last_stamp
    if last[0] == millis:
        stamp = last[1]
    else:
        stamp = _base62(millis, 8)
        _last_stamp = (millis, stamp)
    return f"{prefix}_{stamp}{random_base62(RANDOM_CHARS)}"


# Byte b -> BASE62[b % 62], with bytes >= 248 (4 x 62) deleted: unbiased by rejection, and in
# one C call (bytes.translate) instead of a Python step per character, as ids are made for every
# row the send path writes.
_TO_BASE62 = bytes(ord(BASE62[b % 62]) for b in range(256))
_REJECTED = bytes(range(248, 256))


def random_base62(length: int) -> str:
    """``length`` uniformly random base62 characters."""
    out = b""
    while len(out) < length:
        out += random_bytes(length + length // 8 + 2).translate(_TO_BASE62, _REJECTED)
    return out[:length].decode("ascii")
