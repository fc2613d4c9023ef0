"""``msgine retention``: purge personal data older than the retention period, once."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from msgine.cli._app import app, cli_actor, runtime
from msgine.cli._confirm import DryRunOption, YesOption, confirm
from msgine.cli._output import JsonOption, emit_json, progress

retention = typer.Typer(help="Data retention.", no_args_is_help=True)
app.add_typer(retention, name="retention")


def _plan(due: dict[str, dict[str, int]], older_than_days: int | None) -> list[str]:
    period = (
        f"older than {older_than_days} days"
        if older_than_days is not None
        else "past each account's retention period"
    )
    lines = [f"This removes personal data {period}:"]
    for account_id, counts in due.items():
        if sum(counts.values()):
            lines.append(f"  {account_id}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    lines.append("Counts, statuses, segments and costs stay. It cannot be undone.")
    return lines


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
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = True,
) -> None:
    """Remove message text, numbers, inbound messages and webhook payloads past retention.

    Counts, statuses, segments and costs stay. Shows what will go and asks first (--yes for
    scripts; --dry-run only counts). Prints the counts per account as JSON.
    """
    from msgine.server.compliance import preview_purge, run_purge

    del as_json
    actor = cli_actor()
    with runtime() as rt:
        due = preview_purge(rt, older_than_days=older_than_days)
        payload: dict[str, Any] = {"olderThanDays": older_than_days}
        if dry_run:
            emit_json({**payload, "dryRun": True, "accounts": due})
            return
        if any(sum(counts.values()) for counts in due.values()):
            confirm(_plan(due, older_than_days), question="Purge now?", yes=yes)
        with progress("purging", total=len(due)) as advance:
            results = run_purge(
                rt, older_than_days=older_than_days, actor=actor, on_account=lambda: advance(1)
            )
    emit_json({**payload, "accounts": results})
