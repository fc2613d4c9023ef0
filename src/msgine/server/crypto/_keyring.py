"""The master key ring: where master keys come from and how they are named."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from msgine.server.config import Settings

KEY_BYTES = 32


class MasterKeyError(Exception):
    """The master key is missing, malformed or stored unsafely (message never holds the key)."""


def key_id(key: bytes) -> str:
    """A short public name for a master key, so a wrapped data key says which key wrapped it."""
    return hmac.new(key, b"msgine master key id", hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class MasterKeyRing:
    """Master keys, newest first: the newest wraps, any of them unwraps."""

    keys: tuple[bytes, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise MasterKeyError("no master key configured")

    @property
    def primary_id(self) -> str:
        return key_id(self.keys[0])

    @property
    def primary(self) -> bytes:
        return self.keys[0]

    def by_id(self, kid: str) -> bytes | None:
        for key in self.keys:
            if hmac.compare_digest(key_id(key), kid):
                return key
        return None

    def __repr__(self) -> str:
        return f"MasterKeyRing(ids={[key_id(k) for k in self.keys]})"


def generate_master_key() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def parse_keys(text: str) -> tuple[bytes, ...]:
    """Comma- or newline-separated base64 keys, newest first."""
    keys = []
    for part in text.replace(",", "\n").split():
        try:
            key = base64.b64decode(part, validate=True)
        except (binascii.Error, ValueError):
            raise MasterKeyError("master key is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise MasterKeyError(f"master key must be {KEY_BYTES} bytes of base64")
        keys.append(key)
    return tuple(keys)


def check_file_private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MasterKeyError(
            f"master key file {path} is accessible by other users; run: chmod 600 {path}"
        )


def write_key_file(path: Path, keys_b64: list[str]) -> None:
    """Write atomically with mode 0600 from the start (no window where it is world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(keys_b64) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_master_keys(settings: Settings, *, create: bool = True) -> MasterKeyRing:
    """MSGINE_MASTER_KEY, else the key file, else (first start) a new key file with mode 0600."""
    if settings.master_key is not None:
        return MasterKeyRing(parse_keys(settings.master_key.get_secret_value()))
    path = settings.resolved_master_key_file
    if not path.exists():
        if not create:
            raise MasterKeyError(f"master key file {path} does not exist")
        write_key_file(path, [generate_master_key()])
    check_file_private(path)
    return MasterKeyRing(parse_keys(path.read_text()))
