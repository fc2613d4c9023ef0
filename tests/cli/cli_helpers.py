"""Running ``msgine`` as a person or a script does: a real process, its exit code and output."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

from support import MASTER_KEY
from support import run_msgine as msgine

__all__ = ["cli_env", "msgine", "on_a_terminal", "one_error_line"]


def cli_env(tmp_path: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """An environment with no MSGINE_ settings from the machine, a data directory under
    ``tmp_path`` and, when given, a PostgreSQL database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSGINE_")}
    env["MSGINE_DATA_DIR"] = str(tmp_path / "data")
    if database_url:
        env["MSGINE_DATABASE_URL"] = database_url
        env["MSGINE_MASTER_KEY"] = MASTER_KEY
    env.update(extra)
    return env


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line a failed command prints (and nothing else on stderr)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def on_a_terminal(
    env: dict[str, str],
    args: list[str],
    answer: str = "",
    prompts: tuple[str, ...] = ("[y/N]",),
    hidden: bool = False,
) -> str:
    """Run ``msgine ARGS`` on a pseudo-terminal, type ``answer`` after each of ``prompts`` in
    turn (a confirmation by default), return all it printed.

    ``hidden``: the prompts read without echo (passwords). getpass switches echo off with
    TCSAFLUSH, which throws away anything typed before, so the answer waits for echo to be off.
    """
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "msgine", *args],
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 30
    waiting = [p.encode() for p in prompts]
    seen = 0
    while time.monotonic() < deadline:
        if not select.select([leader], [], [], 0.5)[0]:
            continue  # never block past the deadline
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        if waiting and waiting[0] in output[seen:]:
            seen = output.index(waiting.pop(0), seen) + 1
            if hidden:
                _wait_for_echo_off(leader, deadline)
            os.write(leader, answer.encode())
    process.wait(timeout=30)
    os.close(leader)
    return output.decode(errors="replace")


def _wait_for_echo_off(leader: int, deadline: float) -> None:
    while time.monotonic() < deadline and termios.tcgetattr(leader)[3] & termios.ECHO:
        time.sleep(0.01)
