"""Output every command shares: JSON for scripts, a table for people, progress on a terminal.

Results go to stdout (one JSON document with ``--json``); everything said to the person at the
keyboard (plans, progress, hints) goes to stderr, so ``--json`` output can always be piped.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any

import typer

#: The ``--json`` flag, spelled and explained the same way on every command.
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as one JSON document on stdout")
]


def emit_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, ensure_ascii=False, default=str))


def emit(payload: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """``payload`` as JSON, or drawn for a person by ``render``."""
    if as_json:
        emit_json(payload)
    else:
        render(payload)


def say(message: str) -> None:
    """A note for the person running the command (stderr: never mixed into results)."""
    typer.echo(message, err=True)


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A readable table on stdout. Off a terminal it is not cut to 80 columns, so a line
    piped to ``grep`` still holds the whole row."""
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 1000, highlight=False)
    grid = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    console.print(grid)


def interactive() -> bool:
    """True when a person is watching stderr (progress bars and spinners are for them only)."""
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar (a spinner when ``total`` is None) on stderr, only on a terminal; yields
    ``advance(n)``. Off a terminal nothing is drawn, so logs and pipes stay clean."""
    if not interactive():

        def ignore(n: int = 1) -> None:
            pass

        yield ignore
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance
