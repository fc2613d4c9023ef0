"""Confirmation before a destructive command: say what will happen, then ask.

``--yes`` answers for scripts. Without a terminal to ask on and without ``--yes`` the command
refuses (exit 1) rather than guess: a cron job that forgot ``--yes`` must fail loudly, not erase.
``--dry-run`` shows the same plan and changes nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from msgine.cli._output import say

YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for scripts)")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show what would change and change nothing")
]

EXIT_REFUSED = 1


def confirm(plan: Sequence[str], *, question: str, yes: bool) -> None:
    """Show ``plan`` on stderr and ask ``question``; return only when the answer is yes."""
    for line in plan:
        say(line)
    if yes:
        return
    if not sys.stdin.isatty():
        say(
            "error: not confirmed: no terminal to ask on; re-run with --yes to go ahead"
            " (or --dry-run where offered, to only look)"
        )
        raise typer.Exit(EXIT_REFUSED)
    if not typer.confirm(question, default=False, err=True):
        say("error: cancelled; nothing was changed")
        raise typer.Exit(EXIT_REFUSED)
