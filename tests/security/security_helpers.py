"""Helpers for the security tests: CLI processes on a test's database, reading JSON logs, the
bytes a database holds and what must not be among them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from support import run_msgine as run_cli
from support import settings_env

__all__ = [
    "assert_absent",
    "json_lines",
    "number_forms",
    "run_cli",
    "settings_env",
    "stored_bytes",
]


def json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def number_forms(e164: str) -> list[str]:
    """The number as people and systems write it: E.164, digits, national, spaced."""
    national = e164[4:]  # after +256
    return [
        e164,
        e164[1:],
        "0" + national,
        national,
        f"{national[:3]} {national[3:]}",
        f"+256 {national[:3]} {national[3:]}",
    ]


def stored_bytes(api: Any) -> bytes:
    """Everything the database holds, as bytes someone with the files or a dump would see."""
    settings = api.runtime.settings
    if settings.is_sqlite:
        files = sorted(settings.data_dir.glob("msgine.db*"))
        assert any(f.name.endswith("-wal") for f in files), "expected the WAL to be read too"
        return b"".join(f.read_bytes() for f in files)
    url = settings.database_url.get_secret_value()
    dump = subprocess.run(
        ["pg_dump", "--no-owner", "--data-only", url], capture_output=True, check=True
    ).stdout
    assert b"COPY public.messages" in dump
    return dump


def assert_absent(blob: bytes, secrets: list[str], *, raw: tuple[bytes, ...] = ()) -> None:
    """None of ``secrets`` (as text) or ``raw`` values is in ``blob``, plain or hex-encoded."""
    lowered = blob.lower()
    for secret in secrets:
        encoded = secret.encode()
        assert encoded not in blob, f"plaintext found: {secret[:6]}..."
        # bytea columns appear hex-encoded in a dump: plaintext stored as bytes would show so.
        assert encoded.hex().encode() not in lowered, f"hex plaintext found: {secret[:6]}..."
    for value in raw:
        assert value not in blob
        assert value.hex().encode() not in lowered
