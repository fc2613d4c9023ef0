"""Verifying webhook deliveries: Standard Webhooks headers first, ``x-msgine-signature`` fallback.

Rules, in order:

1. If any Standard Webhooks header (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``)
   is present, all three must be, the timestamp must lie within ``tolerance`` seconds of now in
   either direction, and one ``v1`` signature must match one secret. ``x-msgine-signature`` is then
   ignored, so stripping the signed timestamp cannot downgrade a delivery to the weaker scheme.
2. Otherwise ``x-msgine-signature`` (hex HMAC of the body) must match one secret. It signs no
   timestamp, so it cannot refuse replays by itself: deduplicate on the event ``id`` (see
   ``Deduplicator``), or pass ``allow_legacy=False`` to accept only rule 1.

Every failure is a ``WebhookVerificationError`` whose ``reason`` names the check that failed;
nothing else escapes. Keys are derived once per ``WebhookVerifier`` (and cached by ``verify``) and
each check copies a pre-keyed HMAC, which is what makes verification cheap.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from ._signing import standard_key

Reason = Literal[
    "missing_header",
    "malformed_header",
    "bad_timestamp",
    "timestamp_too_old",
    "timestamp_in_future",
    "malformed_signature",
    "no_matching_signature",
    "invalid_payload",
    "bad_secret",
]

HeadersLike = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[Any, Any]]

_ID, _TIMESTAMP, _SIGNATURE, _HEX = (
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-msgine-signature",
)
_WANTED = frozenset({_ID, _TIMESTAMP, _SIGNATURE, _HEX})
_MAX_TIMESTAMP_DIGITS = 12


class WebhookVerificationError(Exception):
    """The delivery is not authentic or not fresh; ``reason`` says which check failed."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason

    def __repr__(self) -> str:
        return f"WebhookVerificationError(reason={self.reason!r}, message={self.args[0]!r})"


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes | bytearray) else str(value)


def _pick_headers(headers: HeadersLike) -> dict[str, str]:
    """The four headers we need, from dicts, framework header objects or lists of pairs."""
    found: dict[str, str] = {}
    try:
        items = (
            headers.items()
            if isinstance(headers, Mapping) or hasattr(headers, "items")
            else headers
        )
        for key, value in items:
            name = key.lower() if type(key) is str else _text(key).lower()
            if name in _WANTED and name not in found:
                found[name] = value if type(value) is str else _text(value)
    except (TypeError, ValueError, AttributeError):
        raise WebhookVerificationError(
            "malformed_header", "headers must be a mapping or a sequence of (name, value) pairs"
        ) from None
    return found


def _body_bytes(payload: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        try:
            return payload.encode("utf-8")
        except UnicodeEncodeError:
            raise WebhookVerificationError("invalid_payload", "payload is not valid text") from None
    raise WebhookVerificationError("invalid_payload", "payload must be the raw body (bytes or str)")


def _parse_event(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise WebhookVerificationError("invalid_payload", "payload is not UTF-8 JSON") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("invalid_payload", "payload is not a JSON object")
    return event


class WebhookVerifier:
    """Verifies deliveries against one or more secrets (several during a rotation)."""

    __slots__ = ("_hex_keys", "_standard_keys", "allow_legacy", "tolerance")

    def __init__(
        self, secret: str | Sequence[str], tolerance: int = 300, *, allow_legacy: bool = True
    ) -> None:
        secrets = (secret,) if isinstance(secret, str) else tuple(secret)
        if not secrets or not all(isinstance(s, str) and s for s in secrets):
            raise WebhookVerificationError("bad_secret", "at least one non-empty secret is needed")
        if not isinstance(tolerance, int) or tolerance < 0:
            raise WebhookVerificationError("bad_secret", "tolerance must be a non-negative int")
        standard: list[Any] = []
        for item in secrets:
            try:
                standard.append(hmac.new(standard_key(item), digestmod=hashlib.sha256))
            except ValueError:
                continue  # not a whsec_/base64 secret: usable for the hex scheme only
        self._standard_keys = tuple(standard)
        self._hex_keys = tuple(hmac.new(s.encode(), digestmod=hashlib.sha256) for s in secrets)
        self.tolerance = tolerance
        self.allow_legacy = allow_legacy

    def __repr__(self) -> str:
        return (
            f"WebhookVerifier(secrets={len(self._hex_keys)}, tolerance={self.tolerance}, "
            f"allow_legacy={self.allow_legacy})"
        )

    def verify(
        self,
        payload: bytes | bytearray | memoryview | str,
        headers: HeadersLike,
        *,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The parsed event when the delivery is authentic and fresh; raises otherwise."""
        body = _body_bytes(payload)
        found = _pick_headers(headers)
        if _SIGNATURE in found or _ID in found or _TIMESTAMP in found:
            self._check_standard(body, found, time.time() if now is None else now)
        elif _HEX in found:
            if not self.allow_legacy:
                raise WebhookVerificationError(
                    "missing_header", "Standard Webhooks headers are required"
                )
            self._check_hex(body, found[_HEX])
        else:
            raise WebhookVerificationError("missing_header", "no signature header")
        return _parse_event(body)

    def _check_standard(self, body: bytes, found: dict[str, str], now: float) -> None:
        msg_id, stamp, signatures = found.get(_ID), found.get(_TIMESTAMP), found.get(_SIGNATURE)
        if not msg_id or not stamp or not signatures:
            missing = [n for n in (_ID, _TIMESTAMP, _SIGNATURE) if not found.get(n)]
            raise WebhookVerificationError("missing_header", f"missing {', '.join(missing)}")
        stamp = stamp.strip()
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _MAX_TIMESTAMP_DIGITS):
            raise WebhookVerificationError("bad_timestamp", "webhook-timestamp is not Unix seconds")
        timestamp = int(stamp)
        if timestamp < now - self.tolerance:
            raise WebhookVerificationError("timestamp_too_old", "webhook-timestamp is too old")
        if timestamp > now + self.tolerance:
            raise WebhookVerificationError(
                "timestamp_in_future", "webhook-timestamp is too far in the future"
            )
        if not self._standard_keys:
            raise WebhookVerificationError(
                "bad_secret", "no secret is a whsec_ base64 secret usable for webhook-signature"
            )
        try:
            prefix = f"{msg_id}.{stamp}.".encode()
        except UnicodeEncodeError:
            raise WebhookVerificationError("malformed_header", "webhook-id is not text") from None
        expected = []
        for key in self._standard_keys:
            mac = key.copy()
            mac.update(prefix)
            mac.update(body)
            expected.append(mac.digest())
        seen_v1 = malformed = False
        for entry in signatures.split():
            version, comma, value = entry.partition(",")
            if not comma:
                malformed = True
                continue
            if version != "v1":
                continue
            try:
                candidate = binascii.a2b_base64(value, strict_mode=True)
            except (binascii.Error, ValueError):
                malformed = True
                continue
            seen_v1 = True
            for digest in expected:
                if hmac.compare_digest(digest, candidate):
                    return
        if malformed and not seen_v1:
            raise WebhookVerificationError("malformed_signature", "webhook-signature is malformed")
        raise WebhookVerificationError("no_matching_signature", "no signature matches a secret")

    def _check_hex(self, body: bytes, header: str) -> None:
        expected = []
        for key in self._hex_keys:
            mac = key.copy()
            mac.update(body)
            expected.append(mac.hexdigest().encode())
        for entry in header.split():
            candidate = entry.removeprefix("sha256=").lower().encode("utf-8", "replace")
            for digest in expected:
                if hmac.compare_digest(digest, candidate):
                    return
        raise WebhookVerificationError("no_matching_signature", "no signature matches a secret")


@functools.lru_cache(maxsize=32)
def _verifier(secrets: tuple[str, ...], tolerance: int, allow_legacy: bool) -> WebhookVerifier:
    return WebhookVerifier(secrets, tolerance, allow_legacy=allow_legacy)


def verify(
    payload: bytes | bytearray | memoryview | str,
    headers: HeadersLike,
    secret: str | Sequence[str],
    tolerance: int = 300,
    *,
    now: float | None = None,
    allow_legacy: bool = True,
) -> dict[str, Any]:
    """Verify one delivery against the raw body; returns the event, raises
    ``WebhookVerificationError`` otherwise. Pass several secrets during a rotation."""
    try:
        secrets = (secret,) if isinstance(secret, str) else tuple(secret)
        verifier = _verifier(secrets, tolerance, allow_legacy)
    except TypeError:
        raise WebhookVerificationError("bad_secret", "secret must be a string or strings") from None
    return verifier.verify(payload, headers, now=now)
