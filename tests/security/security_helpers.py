"""Helpers for the security tests: CLI processes on a test's database, reading JSON logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def settings_env(settings: Any, **extra: str) -> dict[str, str]:
    """The environment a CLI process needs to open the same database as ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSGINE_")}
    env["MSGINE_DATA_DIR"] = str(settings.data_dir)
    if settings.master_key is not None:
        env["MSGINE_MASTER_KEY"] = settings.master_key.get_secret_value()
    if settings.database_url is not None:
        env["MSGINE_DATABASE_URL"] = settings.database_url.get_secret_value()
    env.update(extra)
    return env


def run_cli(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``msgine ARGS`` as a user runs it; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "msgine", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
