"""Retiring old master keys asks first: afterwards a backup taken before can only be opened
with a copy of the old key kept elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import cli_env, msgine


def test_retiring_old_master_keys_asks_first(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert msgine(env, "init", cwd=tmp_path).returncode == 0
    key_file = tmp_path / "data" / "master.key"
    before = key_file.read_text()

    refused = msgine(env, "crypto", "rotate-master-key", "--retire-old", cwd=tmp_path)
    assert refused.returncode == 1
    assert "removes every older key" in refused.stderr and "--yes" in refused.stderr
    assert key_file.read_text() == before  # not even the rotation happened

    done = msgine(env, "crypto", "rotate-master-key", "--retire-old", "-y", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["retiredOld"] is True
    assert len(key_file.read_text().split()) == 1 and key_file.read_text() != before
    assert msgine(env, "audit", "verify", "--json", cwd=tmp_path).returncode == 0
