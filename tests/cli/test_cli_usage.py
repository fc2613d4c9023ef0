"""Usage errors exit 2 and name the argument or option as ``--help`` shows it; runtime errors
exit 1 with one line; ``--version`` and shell completion work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_helpers import cli_env, msgine, one_error_line

from msgine import __version__

USAGE_ERRORS = [
    (("keys", "revoke"), "Missing argument 'ID'"),
    (("keys", "rotate", "key_x", "--grace-hours"), "Option '--grace-hours' requires an argument"),
    (("audit", "list", "--limit", "many"), "Invalid value for '--limit'"),
    (("keys", "create", "--expires-in-days", "0"), "Invalid value for '--expires-in-days'"),
    (("retention", "purge", "--older-than-days", "-1"), "Invalid value for '--older-than-days'"),
    (("serve", "--port", "70000"), "Invalid value for '--port'"),
    (("keys", "list", "--bogus"), "No such option: --bogus"),
    (("kyes", "list"), "No such command 'kyes'"),
    (("privacy", "erase"), "Missing option '--phone'"),
    (("keys", "create", "--mode", "prod"), "Invalid value for '--mode'"),
]


@pytest.mark.parametrize(
    ("args", "expected"), USAGE_ERRORS, ids=[" ".join(args) for args, _ in USAGE_ERRORS]
)
def test_usage_errors_exit_2_and_name_the_parameter(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    result = msgine(cli_env(tmp_path), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert expected in line
    assert "--help" in line  # where to look next
    assert not (tmp_path / "data").exists()  # a usage error touches nothing


def test_a_bad_value_says_what_is_allowed(tmp_path: Path) -> None:
    result = msgine(cli_env(tmp_path), "audit", "list", "--limit", "0", cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert "'--limit'" in line and "greater than or equal to 1" in line


def test_a_command_group_alone_shows_its_help(tmp_path: Path) -> None:
    result = msgine(cli_env(tmp_path), "keys", cwd=tmp_path)
    assert result.returncode == 2
    assert "revoke" in result.stdout + result.stderr
    assert "error:" not in result.stderr


def test_runtime_errors_exit_1_with_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert msgine(env, "init", cwd=tmp_path).returncode == 0
    result = msgine(env, "keys", "revoke", "key_doesnotexist", "--yes", cwd=tmp_path)
    assert result.returncode == 1
    assert one_error_line(result) == "error: API key not found."


def test_version(tmp_path: Path) -> None:
    result = msgine(cli_env(tmp_path), "--version", cwd=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, f"msgine {__version__}")


def test_shell_completion_is_on(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    shown = msgine(env, "--show-completion", "bash", cwd=tmp_path)
    assert shown.returncode == 0
    assert "_MSGINE_COMPLETE=complete_bash" in shown.stdout
    completed = msgine(
        {**env, "_MSGINE_COMPLETE": "complete_bash", "COMP_WORDS": "msgine ke", "COMP_CWORD": "1"},
        cwd=tmp_path,
    )
    assert completed.stdout.split() == ["keys"]
    assert "--install-completion" in msgine(env, "--help", cwd=tmp_path).stdout


def _leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    children = getattr(command, "commands", None)
    if not children:
        return [(path, command)]
    return [leaf for name, sub in children.items() for leaf in _leaves(sub, (*path, name))]


def test_every_command_that_reports_a_result_takes_json() -> None:
    import typer

    from msgine.cli import app

    leaves = _leaves(typer.main.get_command(app))
    assert len(leaves) >= 15
    # ``worker`` runs until stopped and reports nothing but its (JSON) log lines.
    without = [
        " ".join(path)
        for path, command in leaves
        if path != ("worker",) and not any("--json" in p.opts for p in command.params)
    ]
    assert without == []
