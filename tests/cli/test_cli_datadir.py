"""Only ``serve`` and ``init`` create a gateway. Every other command, run where none exists,
refuses with the path it looked at and how to point it elsewhere, and creates nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_helpers import cli_env, msgine, one_error_line

from msgine.server.storage import current_revision

pytestmark = pytest.mark.slow  # a process per CLI run: scheduled first (see tests/conftest.py)

COMMANDS = [
    ("keys", "list"),
    ("keys", "revoke", "key_abc", "--yes"),
    ("accounts", "create", "ops"),
    ("audit", "verify"),
    ("privacy", "erase", "--phone", "+256701521269", "--yes"),
    ("retention", "purge", "--yes"),
    ("crypto", "rotate-master-key"),
    ("db", "upgrade"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_commands_refuse_where_no_gateway_exists(tmp_path: Path, args: tuple[str, ...]) -> None:
    env = cli_env(tmp_path)
    env.pop("MSGINE_DATA_DIR")  # the default, ./msgine-data, from the folder it runs in
    result = msgine(env, *args, cwd=tmp_path)
    assert result.returncode == 1
    line = one_error_line(result)
    assert str(tmp_path / "msgine-data" / "msgine.db") in line
    assert "--data-dir" in line and "MSGINE_DATA_DIR" in line and "msgine init" in line
    assert list(tmp_path.iterdir()) == []  # no data directory, database or master key


def test_init_then_point_at_it_from_anywhere(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    env.pop("MSGINE_DATA_DIR")
    gateway = tmp_path / "gateway"
    made = msgine(env, "--data-dir", str(gateway), "init", "--json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["created"] is True and created["key"].startswith("msgine_test_")
    assert (gateway / "master.key").stat().st_mode & 0o777 == 0o600

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = msgine(env, "--data-dir", str(gateway), "keys", "list", "--json", cwd=elsewhere)
    assert [k["id"] for k in json.loads(listed.stdout)] == [created["keyId"]]
    by_env = msgine({**env, "MSGINE_DATA_DIR": str(gateway)}, "keys", "list", cwd=elsewhere)
    assert created["keyId"] in by_env.stdout
    lost = msgine(env, "keys", "revoke", created["keyId"], "--yes", cwd=elsewhere)
    assert lost.returncode == 1
    assert "no MsGine gateway here" in one_error_line(lost)  # not "API key not found"
    assert list(elsewhere.iterdir()) == []

    again = msgine(env, "--data-dir", str(gateway), "init", cwd=tmp_path)
    assert again.returncode == 0
    assert "already exists" in again.stderr and "msgine_test_" not in again.stdout


def test_a_lost_master_key_is_not_replaced_by_a_new_one(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert msgine(env, "init", cwd=tmp_path).returncode == 0
    key_file = tmp_path / "data" / "master.key"
    key_file.unlink()
    result = msgine(env, "keys", "list", cwd=tmp_path)
    assert result.returncode == 1
    line = one_error_line(result)
    assert str(key_file) in line and "MSGINE_MASTER_KEY" in line
    assert not key_file.exists()


@pytest.mark.empty_database
def test_an_uninitialised_postgresql_database_is_refused(tmp_path: Path, postgres_url: str) -> None:
    env = cli_env(tmp_path, postgres_url.replace("postgres@", "postgres:hunter2@"))
    result = msgine(env, "keys", "list", cwd=tmp_path)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "not initialised" in line and "MSGINE_DATABASE_URL" in line and "msgine init" in line
    assert postgres_url.rsplit("/", 1)[1] in line and "hunter2" not in line
    assert _revision(postgres_url) is None  # nothing was created

    assert msgine(env, "init", cwd=tmp_path).returncode == 0
    assert _revision(postgres_url) is not None
    assert msgine(env, "keys", "list", cwd=tmp_path).returncode == 0
    upgraded = msgine(env, "db", "upgrade", "--json", cwd=tmp_path)
    assert json.loads(upgraded.stdout) == {"revision": _revision(postgres_url)}


def _revision(url: str) -> str | None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    finally:
        engine.dispose()
