"""``msgine scan`` as a user runs it: a live key in an old commit is found and redacted, a
look-alike is ignored, no database is needed, and ``--revoke`` revokes this gateway's keys."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from security_helpers import run_cli, settings_env

from msgine._keyformat import checksum, generate_key
from msgine.server.accounts import create_account
from msgine.server.keys import create_key, get_key
from msgine.server.storage._tables import audit_log
from support import git

pytestmark = pytest.mark.slow  # a process per CLI run: scheduled first (see tests/conftest.py)


def look_alike(key: str) -> str:
    candidate = key[:-1] + ("0" if key[-1] != "0" else "1")
    assert checksum(candidate[len("msgine_live_") : -6]) != candidate[-6:]
    return candidate


def repo_with_old_key(tmp_path: Path, key: str) -> tuple[Path, str]:
    """A repository whose first commit added ``key``; a later commit removed it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "config.py").write_text(f"DEBUG = False\nAPI_KEY = '{key}'\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "add config")
    added = git(repo, "rev-parse", "HEAD")
    (repo / "config.py").write_text(
        f"import os\nAPI_KEY = os.environ['MSGINE_API_KEY']\nEXAMPLE = '{look_alike(key)}'\n"
    )
    git(repo, "commit", "-q", "-am", "read the key from the environment")
    return repo, added


def no_gateway_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSGINE_")}
    env["MSGINE_DATA_DIR"] = str(tmp_path / "never-created")
    return env


def test_scan_finds_a_live_key_in_an_old_commit(tmp_path: Path) -> None:
    key = generate_key("live")
    repo, added = repo_with_old_key(tmp_path, key)
    env = no_gateway_env(tmp_path)

    result = run_cli(env, "scan", str(repo))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{repo}/config.py:2 (commit {added[:12]}): live key msgine_live_...{key[-4:]}"
    ]
    assert key not in result.stdout + result.stderr
    assert look_alike(key) not in result.stdout

    as_json = run_cli(env, "scan", "--json", str(repo))
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == [
        {
            "path": f"{repo}/config.py",
            "line": 2,
            "commit": added,
            "kind": "api_key",
            "mode": "live",
            "redacted": f"msgine_live_...{key[-4:]}",
        }
    ]
    tree_only = run_cli(env, "scan", "--no-history", str(repo))
    assert tree_only.returncode == 0, tree_only.stderr
    assert tree_only.stdout == ""
    assert not (tmp_path / "never-created").exists()  # no database was opened


def test_test_keys_are_reported_without_failing_and_errors_exit_2(tmp_path: Path) -> None:
    env = no_gateway_env(tmp_path)
    (tmp_path / "notes.txt").write_text(f"key: {generate_key('test')}\n")
    result = run_cli(env, "scan", str(tmp_path / "notes.txt"))
    assert result.returncode == 0
    assert "test key msgine_test_..." in result.stdout
    missing = run_cli(env, "scan", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: no such file")


def test_scan_revoke_revokes_keys_this_gateway_issued(runtime: Any, tmp_path: Path) -> None:
    now = runtime.now()
    account = runtime.db.write(lambda c: create_account(c, "ops", now))
    issued = runtime.db.write(
        lambda c: create_key(c, runtime.vault, account_id=account, now=now, mode="live")
    )
    foreign = generate_key("live")
    leak = tmp_path / "leak"
    leak.mkdir()
    (leak / "a.env").write_text(f"KEY={issued.secret}\nOTHER={foreign}\nAGAIN={issued.secret}\n")

    result = run_cli(settings_env(runtime.settings), "scan", "--revoke", "--json", str(leak))
    assert result.returncode == 1  # the keys are still in the files
    findings = json.loads(result.stdout)
    assert len(findings) == 3
    mine = [f for f in findings if f["keyId"] == issued.record["id"]]
    assert len(mine) == 2
    assert all(f["revoked"] for f in mine)
    assert [f["revoked"] for f in findings if f["keyId"] is None] == [False]
    assert issued.secret not in result.stdout + result.stderr
    assert foreign not in result.stdout + result.stderr

    row = runtime.db.read(lambda c: get_key(c, issued.record["id"]))
    assert row["revoked_reason"] == "leaked"
    entries = runtime.db.read(
        lambda c: c.execute(
            sa.select(audit_log.c.action, audit_log.c.actor).where(
                audit_log.c.target == issued.record["id"]
            )
        ).all()
    )
    action, actor = entries[-1]
    assert action == "key.revoke"
    assert actor.startswith("cli:")
