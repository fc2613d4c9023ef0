"""``serve`` on a busy port says which port and how to choose another; a restart on an
existing gateway says how to create a key, since the first one is shown only once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cli_helpers import cli_env, msgine, one_error_line

from support import start_gateway

pytestmark = pytest.mark.slow  # a process per CLI run: scheduled first (see tests/conftest.py)


def test_a_busy_port_is_one_line_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = msgine(cli_env(tmp_path), "serve", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 1
    line = one_error_line(result)
    assert f"port {port} on 127.0.0.1 is already in use" in line
    assert "--port" in line and "MSGINE_PORT" in line
    assert not (tmp_path / "data").exists()  # refused before creating anything


def test_a_restart_reminds_how_to_create_a_key(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert msgine(env, "init", cwd=tmp_path).returncode == 0  # the key was shown here, once
    gateway = start_gateway(env, cwd=tmp_path)
    gateway.stop()
    assert gateway.api_key == ""
    log = (tmp_path / f"gateway-{gateway.port}.log").read_text()
    assert f"existing gateway at {tmp_path / 'data'}" in log
    assert "msgine keys create --name NAME" in log
    assert f"listening on http://127.0.0.1:{gateway.port}" in log


def test_several_processes_need_postgresql(tmp_path: Path) -> None:
    """On SQLite a second API process would only wait for the first one's write lock."""
    result = msgine(cli_env(tmp_path), "serve", "--port", "0", "--processes", "2", cwd=tmp_path)
    assert result.returncode == 1
    assert "--processes needs PostgreSQL" in one_error_line(result)
    assert not (tmp_path / "data").exists()  # refused before creating anything
