"""Accounts have unique names; ``keys`` show a readable table, name a bad scope, and ask before
revoking or containing a key (``--yes`` for scripts, refusal without a terminal)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import cli_env, msgine, on_a_terminal, one_error_line

from msgine.server.keys import SCOPES
from support import settings_env


@pytest.fixture
def env(tmp_path: Path, database_url: str | None) -> dict[str, str]:
    env = cli_env(tmp_path, database_url)
    done = msgine(env, "init", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return env


def test_account_names_are_unique(env: dict[str, str]) -> None:
    assert msgine(env, "accounts", "create", "ops").returncode == 0
    again = msgine(env, "accounts", "create", "ops")
    assert again.returncode == 1
    assert "'ops' already exists" in one_error_line(again)
    names = [a["name"] for a in json.loads(msgine(env, "accounts", "list", "--json").stdout)]
    assert names == ["default", "ops"]


def test_an_unknown_scope_is_named_and_the_valid_ones_listed(env: dict[str, str]) -> None:
    result = msgine(env, "keys", "create", "--scopes", "messages:send,messages:delete")
    assert result.returncode == 1
    line = one_error_line(result)
    assert "messages:delete" in line
    assert all(scope in line for scope in SCOPES)


def _create(env: dict[str, str], *args: str) -> dict[str, Any]:
    made = msgine(env, "keys", "create", "--json", *args)
    assert made.returncode == 0, made.stderr
    result: dict[str, Any] = json.loads(made.stdout)
    return result


def test_keys_list_is_a_table_with_status_last_use_and_age(env: dict[str, str]) -> None:
    made = _create(env, "--name", "billing", "--mode", "live")
    rotated = json.loads(msgine(env, "keys", "rotate", made["id"], "--json").stdout)
    listing = msgine(env, "keys", "list")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "MODE", "STATUS", "LAST", "USED", "AGE", "KEY"]
    [old] = [line for line in lines if made["id"] in line]
    assert "billing" in old and "live" in old and "grace until " in old and "never" in old
    [new] = [line for line in lines if rotated["id"] in line]
    assert " active " in new and "0d" in new
    assert made["key"] not in listing.stdout and rotated["key"] not in listing.stdout
    assert json.loads(msgine(env, "keys", "list", "--json").stdout)[0]["status"] == "active"


def test_keys_list_flags_keys_older_than_90_days(runtime: Any, clock: Any) -> None:
    from msgine.server.keys import create_key

    account = runtime.db.write(lambda c: _default_account(c, runtime.now()))
    clock.advance(days=-91)
    runtime.db.write(
        lambda c: create_key(c, runtime.vault, account_id=account, now=clock(), name="ancient")
    )
    listing = msgine(settings_env(runtime.settings), "keys", "list")
    [row] = [line for line in listing.stdout.splitlines() if "ancient" in line]
    assert "91d  ROTATE (>90 days)" in row


def _default_account(conn: Any, now: Any) -> str:
    from msgine.server.accounts import create_account

    return create_account(conn, "default", now)


def test_revoke_asks_and_refuses_without_a_terminal(env: dict[str, str]) -> None:
    made = _create(env, "--name", "ci")
    refused = msgine(env, "keys", "revoke", made["id"])
    assert refused.returncode == 1
    assert "This revokes the key:" in refused.stderr and "ci" in refused.stderr
    assert "--yes" in refused.stderr.strip().splitlines()[-1]
    assert _status(env, made["id"]) == "active"  # nothing happened

    done = msgine(env, "keys", "revoke", made["id"], "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "revoked"
    assert _status(env, made["id"]) == "revoked"


def test_revoke_asks_on_a_terminal_and_a_no_changes_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    made = _create(env)
    answered_no = on_a_terminal(env, ["keys", "revoke", made["id"]], "n\n")
    assert "Revoke " in answered_no and "cancelled" in answered_no
    assert _status(env, made["id"]) == "active"
    answered_yes = on_a_terminal(env, ["keys", "revoke", made["id"]], "y\n")
    assert f"revoked {made['id']}" in answered_yes
    assert _status(env, made["id"]) == "revoked"


def test_compromise_asks_too(env: dict[str, str]) -> None:
    made = _create(env)
    refused = msgine(env, "keys", "compromise", made["id"])
    assert refused.returncode == 1 and "treats the key as leaked" in refused.stderr
    assert _status(env, made["id"]) == "active"
    done = msgine(env, "keys", "compromise", made["id"], "-y", "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout)["compromisedKeyId"] == made["id"]


def _status(env: dict[str, str], key_id: str) -> str:
    views = json.loads(msgine(env, "keys", "list", "--json").stdout)
    return str(next(v["status"] for v in views if v["id"] == key_id))


@pytest.mark.empty_database
def test_the_migration_keeps_duplicate_accounts_under_new_names(settings: Any) -> None:
    """Before names were unique, two accounts could share one: the oldest keeps it, the others
    are renamed ``NAME (ID)``; nothing is merged or lost."""
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from msgine.server.storage import Database
    from msgine.server.storage._tables import accounts

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.sqlalchemy_url)
    try:
        db.migrate("0002")
        start = datetime.now(UTC)
        rows = [("acc_b", "ops", 1), ("acc_a", "ops", 0), ("acc_c", "ops", 2), ("acc_d", "dev", 3)]
        for account_id, name, minutes in rows:
            created = start + timedelta(minutes=minutes)
            db.write(
                lambda c, i=account_id, n=name, t=created: c.execute(
                    sa.insert(accounts).values(id=i, name=n, settings={}, created_at=t)
                )
            )
        db.migrate()
        names = dict(db.read(lambda c: c.execute(sa.select(accounts.c.id, accounts.c.name)).all()))
        assert names == {
            "acc_a": "ops",
            "acc_b": "ops (acc_b)",
            "acc_c": "ops (acc_c)",
            "acc_d": "dev",
        }
    finally:
        db.close()
