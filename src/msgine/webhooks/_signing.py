"""Webhook signing, shared by the gateway (which signs) and receivers' tests (which re-sign).

Two schemes travel on every delivery:

* Standard Webhooks: ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
  ``{id}.{timestamp}.{body}``, keyed with the base64-decoded part of a ``whsec_`` secret. The id
  and timestamp are signed, so receivers can refuse replays.
* ``x-msgine-signature``: hex HMAC-SHA256 of the raw body keyed with the UTF-8 bytes of the whole
  secret string, for receivers written against the hosted MsGine API.

During a rotation grace period ``webhook-signature`` carries one value per valid secret, newest
first, separated by spaces (as Standard Webhooks defines it). ``x-msgine-signature`` is always
exactly one 64-character hex value, because receivers written against the hosted API compare it
whole (``crypto.timingSafeEqual`` throws on a length mismatch): during a grace period it is
signed with the *oldest* valid secret, the one every receiver is known to hold, and with the new
secret once the grace period ends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets as _secrets
from collections.abc import Mapping, Sequence
from typing import Any

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` optional, padding optional).

    Raises ``ValueError`` when the secret is not base64 or decodes to nothing.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not base64 after its whsec_ prefix") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(standard_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def sign_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """All headers of one delivery; ``secrets`` are the valid secrets, newest first.

    ``webhook-signature`` has one signature per secret; ``x-msgine-signature`` one, with the
    oldest secret (see the module docstring).
    """
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not one string")
    if not secrets:
        raise ValueError("at least one secret is required")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign_standard(s, msg_id, timestamp, body) for s in secrets),
        "x-msgine-signature": sign_hex(secrets[-1], body),
    }


_MAX_SAFE_INTEGER = 2**53 - 1


_SCALARS = frozenset({str, bool, type(None)})


def _check_portable(obj: Any) -> None:
    """Refuse what JavaScript would re-serialise differently: floats, big ints, index-like keys."""
    if type(obj) in _SCALARS:  # most values: decided without the ABC checks below
        return
    if isinstance(obj, float):
        raise TypeError("webhook bodies must not contain floats (they do not round-trip exactly)")
    if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > _MAX_SAFE_INTEGER:
        raise ValueError("webhook bodies must not contain integers beyond 2**53 - 1")
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError("webhook body keys must be strings")
            if key.isdigit() and key.isascii() and (key == "0" or key[0] != "0"):
                # JavaScript orders integer-like keys first, which would reorder the bytes.
                raise ValueError("webhook body keys must not be integer-like")
            _check_portable(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _check_portable(value)


def encode_body(obj: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON such that ``JSON.stringify(JSON.parse(body))`` yields the same bytes.

    Floats, integers beyond 2**53 and integer-like keys are refused because JavaScript would
    print or order them differently (``1.0`` becomes ``1``).
    """
    _check_portable(obj)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
