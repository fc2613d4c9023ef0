"""Public identifiers: ``prefix_`` + time-ordered, unguessable base62.

Time-ordered so new rows land at the end of B-tree indexes; 14 random characters (~83 bits) so an
id cannot be guessed (access control still checks the account on every lookup).
"""

from __future__ import annotations

import time

from msgine._keyformat import BASE62, _base62
from msgine.server._random import random_bytes

RANDOM_CHARS = 14


def new_id(prefix: str) -> str:
    stamp = _base62(time.time_ns() // 1_000_000, 8)
    return f"{prefix}_{stamp}{random_base62(RANDOM_CHARS)}"


def random_base62(length: int) -> str:
    """Unbiased base62 by rejection: bytes >= 248 (4 x 62) are skipped."""
    out: list[str] = []
    while len(out) < length:
        out.extend(BASE62[b % 62] for b in random_bytes(length * 2) if b < 248)
    return "".join(out[:length])
