"""The Typer application, error handling and shared helpers for every command."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

import typer

app = typer.Typer(
    name="msgine",
    help="MsGine: a self-hosted, secure-by-default SMS gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and a non-zero exit, as the contract asks of every command."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def emit_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, ensure_ascii=False, default=str))


@contextlib.contextmanager
def runtime() -> Iterator[Any]:
    """An opened gateway runtime with the same configuration as ``serve``."""
    from msgine.server.config import load_settings
    from msgine.server.runtime import Runtime

    rt = Runtime.open(load_settings())
    try:
        yield rt
    finally:
        rt.close()


def main() -> None:
    from msgine.server.crypto._keyring import MasterKeyError
    from msgine.server.errors import DomainError

    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # click returns Exit codes in non-standalone mode
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (DomainError, MasterKeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("error: aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            typer.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        typer.echo(f"error: {type(exc).__name__}: {_safe(exc)}", err=True)
        sys.exit(1)


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
