"""``msgine retention``: purge personal data older than the retention period, once."""

from __future__ import annotations

from typing import Annotated

import typer

from msgine.cli._app import app, cli_actor, emit_json, runtime

retention = typer.Typer(help="Data retention.", no_args_is_help=True)
app.add_typer(retention, name="retention")


@retention.command("purge")
def purge(
    older_than_days: Annotated[
        int | None,
        typer.Option(
            "--older-than-days",
            min=0,
            help="Purge data older than this in every account (default: each account's setting)",
        ),
    ] = None,
) -> None:
    """Remove message text, numbers, inbound messages and webhook payloads past retention.

    Counts, statuses, segments and costs stay. Prints the counts per account as JSON.
    """
    from msgine.server.compliance._retention import run_purge

    actor = cli_actor()
    with runtime() as rt:
        results = run_purge(rt, older_than_days=older_than_days, actor=actor)
    emit_json({"olderThanDays": older_than_days, "accounts": results})
