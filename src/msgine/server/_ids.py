"""Public identifiers: ``prefix_`` + time-ordered, unguessable base62.

Time-ordered so new rows land at the end of B-tree indexes; 14 random characters (~83 bits) so an
id cannot be guessed (access control still checks the account on every lookup).
"""

from __future__ import annotations

import secrets
import time

from msgine._keyformat import BASE62, _base62


def new_id(prefix: str) -> str:
    stamp = _base62(time.time_ns() // 1_000_000, 8)
    return f"{prefix}_{stamp}{''.join(secrets.choice(BASE62) for _ in range(14))}"
