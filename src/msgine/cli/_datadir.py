"""The data-directory guard: only ``serve`` and ``init`` may create a gateway.

Any other command run where no gateway exists (the wrong folder, a mistyped MSGINE_DATA_DIR, a
database nobody initialised) would otherwise start an empty one with a new master key, and then
report "API key not found" about a key that exists elsewhere. It refuses instead, saying where it
looked and how to point it at the right place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="PATH",
        help="The gateway's data directory (default: MSGINE_DATA_DIR, else ./msgine-data)",
        show_default=False,
    ),
]


_given: list[Path] = []  # the --data-dir of this process, to say where a path came from


def use_data_dir(path: Path | None) -> None:
    """Make ``--data-dir`` the setting every part of this process reads (as MSGINE_DATA_DIR)."""
    if path is not None:
        os.environ["MSGINE_DATA_DIR"] = str(path)
        _given.append(path)


def _source(settings: Any) -> str:
    if _given:
        return "--data-dir"
    if "MSGINE_DATA_DIR" in os.environ:
        return "MSGINE_DATA_DIR"
    if settings.data_dir != Path("msgine-data"):
        return "MSGINE_DATA_DIR in ./.env"
    return "the default ./msgine-data"


def not_initialised_message(settings: Any, where: str, reason: str) -> str:
    """One line: what is missing, where it looked, and how to point elsewhere or create one."""
    if settings.is_sqlite:
        return (
            f"no MsGine gateway here ({reason}: {where}, data directory from "
            f"{_source(settings)}); run in "
            "the gateway's folder, or point at it with --data-dir PATH, MSGINE_DATA_DIR=PATH or "
            "MSGINE_DATABASE_URL=URL; 'msgine init' creates a new gateway"
        )
    return (
        f"no MsGine gateway in this database ({reason}: {where}, from MSGINE_DATABASE_URL); "
        "check MSGINE_DATABASE_URL, or run 'msgine init' (or 'msgine serve') once to create it"
    )


def missing_key_message(settings: Any, problem: str) -> str:
    return (
        f"{problem}; this gateway's data cannot be opened without its master key: set "
        "MSGINE_MASTER_KEY or MSGINE_MASTER_KEY_FILE (see docs/deployment.md), or point "
        "--data-dir / MSGINE_DATA_DIR at the directory that holds master.key"
    )
