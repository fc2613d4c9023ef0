"""Identities under which counts are kept: opaque by construction, never phone numbers.

Identities end up in Redis key names, so a recipient number must reach the limiter only as a
keyed hash. The limiter refuses anything that looks like a phone number rather than trusting
every caller to remember.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_NAMESPACE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_PHONE_LIKE = re.compile(r"\+?[\d\s()\-]*")
_MIN_PHONE_DIGITS = 7


def opaque_identity(value: str, key: bytes) -> str:
    """A keyed HMAC-SHA256 of `value` (e.g. a recipient number), safe to use as an identity.

    The key must be secret (e.g. the blind-index key): a plain hash of a phone number is
    reversible by enumerating the number space.
    """
    if len(key) < 16:
        raise ValueError("the identity key must be at least 16 bytes")
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"h_{digest[:32]}"


def check_namespace(namespace: str) -> None:
    if not _NAMESPACE.fullmatch(namespace):
        raise ValueError("a rate-limit namespace is 1-32 of a-z, 0-9, '_' or '-'")


def check_identity(identity: str) -> None:
    """Refuse empty identities and ones that look like a phone number (message names neither)."""
    if not identity or len(identity) > 200:
        raise ValueError("a rate-limit identity must be 1-200 characters")
    if _PHONE_LIKE.fullmatch(identity) and sum(c.isdigit() for c in identity) >= _MIN_PHONE_DIGITS:
        raise ValueError(
            "a rate-limit identity must be opaque, not a phone number; use opaque_identity()"
        )
