"""Verifying webhook deliveries: Standard Webhooks headers first, ``x-msgine-signature`` fallback.

Rules, in order:

1. If any Standard Webhooks header (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``)
   is present, all three must be, the timestamp must lie within ``tolerance`` seconds of now in
   either direction, and one ``v1`` signature must match one secret. ``x-msgine-signature`` is then
   ignored, so stripping the signed timestamp cannot downgrade a delivery to the weaker scheme.
2. Otherwise, only with ``allow_legacy=True``, ``x-msgine-signature`` (hex HMAC of the body) must
   match one secret. It signs no header timestamp, so a captured delivery could be replayed
   forever; legacy mode therefore needs a dedupe store and checks what the signed body says: its
   ``timestamp`` must be at most ``legacy_max_age`` seconds old (not more than ``tolerance`` in
   the future) and its ``id`` must not have been seen before (reason ``replayed``). A replay is
   refused by the store while it remembers the id, and by its age once it has forgotten it, so
   keep the store's TTL at least ``legacy_max_age``. Without ``allow_legacy`` (the default), a
   delivery without the Standard Webhooks headers is refused (``missing_header``).

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
from datetime import datetime
from typing import Any, Literal

from ._dedupe import DEFAULT_TTL, DedupeStore
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
    "replayed",
    "dedupe_unavailable",
    "bad_configuration",
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
#: How old a legacy (``x-msgine-signature`` only) delivery's body ``timestamp`` may be: the
#: sender's retry schedule (about 27.5 h) with room to spare, and the dedupe stores' default TTL.
DEFAULT_LEGACY_MAX_AGE = DEFAULT_TTL


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

    __slots__ = (
        "_hex_keys",
        "_standard_keys",
        "allow_legacy",
        "dedupe",
        "legacy_max_age",
        "tolerance",
    )

    def __init__(
        self,
        secret: str | Sequence[str],
        tolerance: int = 300,
        *,
        allow_legacy: bool = False,
        dedupe: DedupeStore | None = None,
        legacy_max_age: int = DEFAULT_LEGACY_MAX_AGE,
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
        if allow_legacy and dedupe is None:
            raise WebhookVerificationError(
                "bad_configuration",
                "allow_legacy needs a dedupe store: x-msgine-signature alone signs no timestamp",
            )
        if not isinstance(legacy_max_age, int) or legacy_max_age < 1:
            raise WebhookVerificationError(
                "bad_configuration", "legacy_max_age must be a positive int"
            )
        self.tolerance = tolerance
        self.allow_legacy = allow_legacy
        self.dedupe = dedupe
        self.legacy_max_age = legacy_max_age

    def __repr__(self) -> str:
        return (
            f"WebhookVerifier(secrets={len(self._hex_keys)}, tolerance={self.tolerance}, "
            f"allow_legacy={self.allow_legacy}, dedupe={self.dedupe is not None})"
        )

    def verify(
        self,
        payload: bytes | bytearray | memoryview | str,
        headers: HeadersLike,
        *,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The parsed event when the delivery is authentic and fresh; raises otherwise.

        A legacy delivery's id is recorded in the dedupe store as soon as it verifies (so
        process it, or be ready to lose it); ``WebhookReceiver`` instead claims and completes
        around your handler.
        """
        event, legacy = self.verify_delivery(payload, headers, now=now)
        if legacy:
            assert self.dedupe is not None  # allow_legacy requires one
            _record_once(self.dedupe, event["id"])
        return event

    def verify_delivery(
        self,
        payload: bytes | bytearray | memoryview | str,
        headers: HeadersLike,
        *,
        now: float | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The event and whether it came by the legacy scheme (its id not yet deduplicated)."""
        body = _body_bytes(payload)
        found = _pick_headers(headers)
        current = time.time() if now is None else now
        if _SIGNATURE in found or _ID in found or _TIMESTAMP in found:
            self._check_standard(body, found, current)
            return _parse_event(body), False
        if _HEX not in found:
            raise WebhookVerificationError("missing_header", "no signature header")
        if not self.allow_legacy:
            raise WebhookVerificationError(
                "missing_header", "Standard Webhooks headers are required"
            )
        self._check_hex(body, found[_HEX])
        event = _parse_event(body)
        self._check_legacy_event(event, current)
        return event, True

    def _check_legacy_event(self, event: dict[str, Any], now: float) -> None:
        """The signed body's own id and timestamp stand in for the unsigned-time headers."""
        event_id = event.get("id")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
            raise WebhookVerificationError("invalid_payload", "the event has no usable id")
        stamp = event.get("timestamp")
        try:
            if not isinstance(stamp, str) or len(stamp) > 40:
                raise ValueError
            when = datetime.fromisoformat(stamp)
            if when.tzinfo is None:
                raise ValueError
            seconds = when.timestamp()
        except (ValueError, OverflowError, OSError):
            raise WebhookVerificationError(
                "bad_timestamp", "the event's timestamp is not an ISO 8601 time with a zone"
            ) from None
        if seconds < now - self.legacy_max_age:
            raise WebhookVerificationError("timestamp_too_old", "the event is too old")
        if seconds > now + self.tolerance:
            raise WebhookVerificationError(
                "timestamp_in_future", "the event's timestamp is too far in the future"
            )

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


def _record_once(store: DedupeStore, event_id: str) -> None:
    """Record a legacy delivery's event id; ``replayed`` if it was seen before. A store that
    fails refuses the delivery rather than let a possible replay through."""
    try:
        first = store.claim(event_id)
        if first:
            store.complete(event_id)
    except Exception:
        raise WebhookVerificationError(
            "dedupe_unavailable", "the dedupe store did not answer"
        ) from None
    if not first:
        raise WebhookVerificationError("replayed", "this event id was already delivered")


@functools.lru_cache(maxsize=32)
def _verifier(secrets: tuple[str, ...], tolerance: int) -> WebhookVerifier:
    return WebhookVerifier(secrets, tolerance)


def verify(
    payload: bytes | bytearray | memoryview | str,
    headers: HeadersLike,
    secret: str | Sequence[str],
    tolerance: int = 300,
    *,
    now: float | None = None,
    allow_legacy: bool = False,
    dedupe: DedupeStore | None = None,
    legacy_max_age: int = DEFAULT_LEGACY_MAX_AGE,
) -> dict[str, Any]:
    """Verify one delivery against the raw body; returns the event, raises
    ``WebhookVerificationError`` otherwise. Pass several secrets during a rotation.

    ``allow_legacy=True`` also accepts deliveries signed only by ``x-msgine-signature`` and then
    needs ``dedupe`` (a store that remembers event ids; see the module docstring)."""
    try:
        secrets = (secret,) if isinstance(secret, str) else tuple(secret)
        if allow_legacy:
            verifier = WebhookVerifier(
                secrets,
                tolerance,
                allow_legacy=True,
                dedupe=dedupe,
                legacy_max_age=legacy_max_age,
            )
        else:
            verifier = _verifier(secrets, tolerance)
    except TypeError:
        raise WebhookVerificationError("bad_secret", "secret must be a string or strings") from None
    return verifier.verify(payload, headers, now=now)
