"""``msgine users``: create (a one-time password printed once, or one asked without echo), list,
disable and reset-2fa, every change audited as the operator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import cli_env, msgine, on_a_terminal, one_error_line

pytestmark = pytest.mark.slow  # a process per CLI run: scheduled first (see tests/conftest.py)


def _initialised(tmp_path: Path, database_url: str | None) -> dict[str, str]:
    env = cli_env(tmp_path, database_url)
    done = msgine(env, "init", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return env


@pytest.fixture
def env(tmp_path: Path, database_url: str | None) -> dict[str, str]:
    """On SQLite and PostgreSQL."""
    return _initialised(tmp_path, database_url)


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    """For how passwords are asked (storage is the same as with ``env``)."""
    return _initialised(tmp_path, None)


def _json(done: Any) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_create_list_disable_and_reset_are_audited(env: dict[str, str]) -> None:
    made = _json(msgine(env, "users", "create", "Alice@Example.com", "--role", "owner", "--json"))
    assert made["email"] == "alice@example.com" and made["passwordMustChange"] is True
    assert len(made["password"]) >= 16  # the one-time password, in this output only
    listed = _json(msgine(env, "users", "list", "--json"))
    assert [u["email"] for u in listed] == ["alice@example.com"]
    assert made["password"] not in json.dumps(listed) and "hash" not in json.dumps(listed)
    again = msgine(env, "users", "create", "alice@example.com", "--role", "viewer")
    assert "exists already" in one_error_line(again)
    bad = msgine(env, "users", "create", "bob@example.com", "--role", "admin")
    assert bad.returncode == 2 and "'admin'" in bad.stderr
    assert _json(msgine(env, "users", "disable", made["id"], "--yes", "--json"))["disabled"]
    reset = _json(msgine(env, "users", "reset-2fa", "alice@example.com", "--yes", "--json"))
    assert reset["twoFactor"] is False
    audit = msgine(env, "audit", "verify")
    assert audit.returncode == 0, audit.stderr


def test_ask_password_takes_it_without_echo_on_a_terminal(sqlite_env: dict[str, str]) -> None:
    env = sqlite_env
    secret = "a password of my own"
    seen = on_a_terminal(
        env,
        ["users", "create", "me@example.com", "--role", "owner", "--ask-password"],
        answer=f"{secret}\n",
        prompts=("Password:", "Repeat for confirmation:"),
        hidden=True,
    )
    assert "Repeat for confirmation" in seen and secret not in seen
    listed = _json(msgine(env, "users", "list", "--json"))
    assert listed[0]["passwordMustChange"] is False


def test_a_short_password_from_standard_input_is_refused(sqlite_env: dict[str, str]) -> None:
    done = msgine(
        sqlite_env,
        "users",
        "create",
        "me@example.com",
        "--role",
        "owner",
        "--ask-password",
        stdin="short\n",
    )
    assert "at least 12 characters" in one_error_line(done)
