"""AES-256-GCM envelope encryption bound to row and column, plus keyed HMACs.

Ciphertext layout: ``0x01 | data key id (4 bytes, big endian) | nonce (12) | ciphertext+tag``.
The associated data names the table, column and row, so a ciphertext copied to another row or
column fails to decrypt instead of silently showing someone else's data.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from msgine.server._random import random_bytes
from msgine.server.crypto._keyring import MasterKeyRing

FORMAT_VERSION = 1
_HEADER = struct.Struct(">BI")
NONCE_BYTES = 12

# Data key purposes. Each has its own key so a leak of one use cannot serve another.
ENVELOPE = "envelope"
BLIND_INDEX = "blind_index"
KEY_HASH = "key_hash"
AUDIT = "audit"
PURPOSES = (ENVELOPE, BLIND_INDEX, KEY_HASH, AUDIT)


class DecryptionError(Exception):
    """A value could not be decrypted: wrong key, tampering, or moved to another row."""


def wrap_aad(data_key_id: int, purpose: str) -> bytes:
    return f"msgine data key {data_key_id} {purpose}".encode()


def wrap(master: bytes, data_key_id: int, purpose: str, key: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(master).encrypt(nonce, key, wrap_aad(data_key_id, purpose))


def unwrap(master: bytes, data_key_id: int, purpose: str, wrapped: bytes) -> bytes:
    try:
        return AESGCM(master).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], wrap_aad(data_key_id, purpose)
        )
    except InvalidTag:
        raise DecryptionError(
            f"data key {data_key_id} does not unwrap with the configured master key"
        ) from None


@dataclass(frozen=True)
class WrappedKey:
    id: int
    purpose: str
    master_kid: str
    wrapped: bytes = field(repr=False)
    active: bool


class Vault:
    """Unwrapped data keys in memory; encrypts, decrypts and computes keyed hashes."""

    def __init__(self, ring: MasterKeyRing, wrapped_keys: list[WrappedKey]) -> None:
        self._ciphers: dict[int, AESGCM] = {}
        self._active: dict[str, int] = {}
        self._hmac_keys: dict[str, bytes] = {}
        for wk in wrapped_keys:
            master = ring.by_id(wk.master_kid)
            if master is None:
                raise DecryptionError(
                    f"data key {wk.id} is wrapped by master key {wk.master_kid}, "
                    "which is not configured"
                )
            key = unwrap(master, wk.id, wk.purpose, wk.wrapped)
            if wk.purpose == ENVELOPE:
                self._ciphers[wk.id] = AESGCM(key)
                if wk.active:
                    self._active[ENVELOPE] = wk.id
            elif wk.active:
                self._hmac_keys[wk.purpose] = key
        missing = [p for p in PURPOSES if p not in self._active and p not in self._hmac_keys]
        if missing:
            raise DecryptionError(f"no active data key for {', '.join(missing)}")
        self._idempotency_key = hmac.new(
            self._hmac_keys[BLIND_INDEX], b"msgine idempotency keys", hashlib.sha256
        ).digest()

    def __repr__(self) -> str:
        return f"Vault(envelope_keys={sorted(self._ciphers)})"

    @staticmethod
    def aad(table: str, column: str, row_id: str) -> bytes:
        return f"{table}.{column}:{row_id}".encode()

    def encrypt(self, plaintext: bytes, *, table: str, column: str, row_id: str) -> bytes:
        key_id = self._active[ENVELOPE]
        nonce = random_bytes(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, plaintext, self.aad(table, column, row_id))
        return _HEADER.pack(FORMAT_VERSION, key_id) + nonce + sealed

    def decrypt(self, blob: bytes, *, table: str, column: str, row_id: str) -> bytes:
        if len(blob) < _HEADER.size + NONCE_BYTES + 16:
            raise DecryptionError(f"{table}.{column} of {row_id}: ciphertext too short")
        version, key_id = _HEADER.unpack_from(blob)
        cipher = self._ciphers.get(key_id)
        if version != FORMAT_VERSION or cipher is None:
            raise DecryptionError(f"{table}.{column} of {row_id}: unknown key or format")
        start = _HEADER.size
        try:
            return cipher.decrypt(
                blob[start : start + NONCE_BYTES],
                blob[start + NONCE_BYTES :],
                self.aad(table, column, row_id),
            )
        except InvalidTag:
            raise DecryptionError(
                f"{table}.{column} of {row_id} failed authentication "
                "(wrong key, tampered, or moved from another row)"
            ) from None

    def encrypt_str(self, text: str, *, table: str, column: str, row_id: str) -> bytes:
        return self.encrypt(text.encode("utf-8"), table=table, column=column, row_id=row_id)

    def decrypt_str(self, blob: bytes, *, table: str, column: str, row_id: str) -> str:
        return self.decrypt(blob, table=table, column=column, row_id=row_id).decode("utf-8")

    def blind_index(self, account_id: str, value: str) -> str:
        """Keyed, per-account lookup token for an exact value (a phone number in E.164)."""
        message = f"{account_id}\x00{value}".encode()
        return hmac.new(self._hmac_keys[BLIND_INDEX], message, hashlib.sha256).hexdigest()[:32]

    def idempotency_hash(self, account_id: str, key: str) -> str:
        """Keyed, per-account token for a client's idempotency key: the key is the client's
        own text (it may hold an order number or an e-mail address), so it is stored only as
        this. A separate key derived from the blind-index key keeps the two uses apart."""
        message = f"{account_id}\x00{key}".encode()
        return hmac.new(self._idempotency_key, message, hashlib.sha256).hexdigest()

    def key_hash(self, api_key: str) -> str:
        """Keyed hash of an API key: a stolen database alone cannot test guesses."""
        return hmac.new(self._hmac_keys[KEY_HASH], api_key.encode(), hashlib.sha256).hexdigest()

    def audit_key(self) -> bytes:
        return self._hmac_keys[AUDIT]
