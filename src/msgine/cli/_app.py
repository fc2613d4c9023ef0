"""The Typer application, error handling and shared helpers for every command.

Exit codes: 0 success; 1 a runtime error (one line on stderr, starting ``error:``); 2 a usage
error (an unknown command or option, a missing or invalid argument), naming the argument or
option as ``--help`` shows it; 130 interrupted.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import typer

from msgine.cli._datadir import (
    DataDirOption,
    missing_key_message,
    not_initialised_message,
    use_data_dir,
)
from msgine.cli._output import emit_json

__all__ = ["EXIT_USAGE", "app", "cli_actor", "emit_json", "fail", "main", "runtime"]

EXIT_USAGE = 2

app = typer.Typer(
    name="msgine",
    help="MsGine: a self-hosted, secure-by-default SMS gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        from msgine import __version__

        typer.echo(f"msgine {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the version and exit",
        ),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """MsGine: a self-hosted, secure-by-default SMS gateway."""
    use_data_dir(data_dir)


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and a non-zero exit, as the contract asks of every command."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def runtime(*, create: bool = False) -> Iterator[Any]:
    """An opened gateway runtime with the same configuration as ``serve``.

    Only ``serve`` and ``init`` pass ``create``: every other command refuses where no gateway
    exists instead of silently starting an empty one (see ``_datadir``).
    """
    from msgine.server.config import load_settings
    from msgine.server.crypto import MasterKeyError
    from msgine.server.runtime import NotInitialised, Runtime

    settings = load_settings()
    try:
        rt = Runtime.open(settings, create=create)
    except NotInitialised as exc:
        fail(not_initialised_message(settings, exc.where, exc.reason))
    except MasterKeyError as exc:
        key_file = settings.resolved_master_key_file
        if create or settings.master_key is not None or key_file.exists():
            raise
        fail(missing_key_message(settings, str(exc)))
    try:
        yield rt
    finally:
        rt.close()


def main() -> None:
    from msgine.server.crypto import MasterKeyError
    from msgine.server.errors import DomainError

    try:
        code = app(prog_name="msgine", standalone_mode=False)
        if isinstance(code, int) and code:  # click returns Exit codes in non-standalone mode
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # typer's own click: usage errors and the like
        _usage_error(exc)
    except (DomainError, MasterKeyError) as exc:
        typer.echo(f"error: {_domain_message(exc)}", err=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("error: aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        typer.echo(f"error: {type(exc).__name__}: {_safe(exc)}", err=True)
        sys.exit(1)


def _usage_error(exc: typer.TyperException) -> NoReturn:
    """One line naming the argument or option as ``--help`` shows it, and where help is.
    A command group run with no command shows its help (the message *is* the help)."""
    text = exc.format_message().strip()
    if "\n" in text:
        typer.echo(text, err=True)
    elif text:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else " (see --help)"
        typer.echo(f"error: {text}{hint}", err=True)
    sys.exit(exc.exit_code)


def _domain_message(exc: Exception) -> str:
    """The error's message, and for a refused value the values that are allowed."""
    details = getattr(exc, "details", None) or {}
    message = str(exc)
    if details.get("unknown"):
        message += f" Unknown: {', '.join(map(str, details['unknown']))}."
    if details.get("allowed"):
        message += f" Valid: {', '.join(map(str, details['allowed']))}."
    return message


def _safe(exc: Exception) -> str:
    from msgine.server.logging import redact

    return str(redact(str(exc).splitlines()[0] if str(exc) else ""))[:300]


def cli_actor() -> Any:
    """The audit actor for a command-line action: ``cli:<os user>``."""
    import getpass

    from msgine.server.audit import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(name=f"cli:{user}")
