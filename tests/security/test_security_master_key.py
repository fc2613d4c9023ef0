"""``msgine crypto rotate-master-key``: data keys are re-wrapped with a new master key while the
gateway keeps serving; the old key can then be retired; audited; never leaves data unreadable."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from security_helpers import run_cli, settings_env

from msgine.server.crypto._keyring import key_id
from msgine.server.storage._tables import data_keys
from support import Gateway, start_gateway

pytestmark = pytest.mark.slow  # a process per CLI run: scheduled first (see tests/conftest.py)

TEXT = "rotation survives this text"


def _file_ids(path: Path) -> list[str]:
    return [key_id(base64.b64decode(line)) for line in path.read_text().split()]


def _wrapping_ids(db_path: Path) -> set[str]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return {row[0] for row in db.execute("SELECT master_kid FROM data_keys")}
    finally:
        db.close()


def _content(gw: Gateway, message_id: str) -> str:
    got = httpx.get(
        f"{gw.base_url}/messages/{message_id}", headers={"X-Api-Key": gw.api_key}, timeout=10
    )
    assert got.status_code == 200, got.text
    return str(got.json()["content"])


def test_rotation_while_serving_then_retire_and_restart(gateway: Gateway) -> None:
    data = Path(gateway.env["MSGINE_DATA_DIR"])
    key_file = data / "master.key"
    [original] = _file_ids(key_file)
    sent = httpx.post(
        f"{gateway.base_url}/messages/sms",
        json={"to": "+256772938461", "message": TEXT},
        headers={"X-Api-Key": gateway.api_key},
        timeout=10,
    )
    message_id = sent.json()["id"]

    rotated = json.loads(gateway.cli("crypto", "rotate-master-key", "--json").stdout)
    assert rotated["oldKeyIds"] == [original]
    assert rotated["dataKeys"] == 4
    assert _file_ids(key_file) == [rotated["newKeyId"], original]
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert _wrapping_ids(data / "msgine.db") == {rotated["newKeyId"]}
    assert _content(gateway, message_id) == TEXT  # the running process noticed nothing

    retired = json.loads(
        gateway.cli("crypto", "rotate-master-key", "--retire-old", "--yes", "--json").stdout
    )
    assert _file_ids(key_file) == [retired["newKeyId"]]
    assert _wrapping_ids(data / "msgine.db") == {retired["newKeyId"]}

    audit = json.loads(gateway.cli("audit", "list", "--json").stdout)
    rotations = [e for e in audit if e["action"] == "master_key.rotate"]
    assert [e["target"] for e in rotations] == [retired["newKeyId"], rotated["newKeyId"]]
    assert rotations[0]["details"]["retiredOld"] is True
    assert rotations[1]["details"]["oldKeyIds"] == [original]
    assert gateway.cli("audit", "verify").stdout.startswith("ok: ")

    gateway.stop()
    restarted = start_gateway(gateway.env, cwd=Path(gateway.root))
    try:
        restarted.api_key = gateway.api_key
        assert _content(restarted, message_id) == TEXT
    finally:
        restarted.stop()


def test_rotation_with_an_environment_key_writes_a_new_key_file(
    runtime: Any, tmp_path: Path
) -> None:
    env = settings_env(runtime.settings)
    before = runtime.db.read(lambda c: c.execute(sa.select(data_keys.c.wrapped)).scalars().all())

    refused = run_cli(env, "crypto", "rotate-master-key")
    assert refused.returncode == 1
    assert "--new-key-file" in refused.stderr
    after = runtime.db.read(lambda c: c.execute(sa.select(data_keys.c.wrapped)).scalars().all())
    assert after == before

    new_file = tmp_path / "keys" / "master.key"
    done = run_cli(env, "crypto", "rotate-master-key", "--new-key-file", str(new_file))
    assert done.returncode == 0, done.stderr
    assert f"MSGINE_MASTER_KEY_FILE={new_file}" in done.stderr
    assert new_file.stat().st_mode & 0o777 == 0o600
    assert len(_file_ids(new_file)) == 2
    old_key = env["MSGINE_MASTER_KEY"]
    assert old_key not in done.stdout + done.stderr

    switched = {k: v for k, v in env.items() if k != "MSGINE_MASTER_KEY"}
    switched["MSGINE_MASTER_KEY_FILE"] = str(new_file)
    verified = run_cli(switched, "audit", "verify")
    assert verified.returncode == 0, verified.stderr

    stale = run_cli(env, "keys", "list")  # only the old key: loud failure, no silent garbage
    assert stale.returncode == 1
    assert "DecryptionError" in stale.stderr

    again = run_cli(switched, "crypto", "rotate-master-key", "--new-key-file", str(new_file))
    assert again.returncode == 0, again.stderr  # the file is the configured one now
    assert len(_file_ids(new_file)) == 3
