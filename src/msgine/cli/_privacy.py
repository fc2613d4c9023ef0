"""``msgine privacy``: export or erase everything held about a phone number, in every account."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from msgine.cli._app import app, cli_actor, runtime
from msgine.cli._confirm import DryRunOption, YesOption, confirm
from msgine.cli._output import JsonOption, emit_json, progress, say

privacy = typer.Typer(help="Data-subject requests for one phone number.", no_args_is_help=True)
app.add_typer(privacy, name="privacy")

Phone = Annotated[str, typer.Option("--phone", help="The number, in international form")]


@privacy.command("export")
def export(phone: Phone, as_json: JsonOption = True) -> None:
    """Print, as JSON, everything any account holds about the number (recorded in the audit).

    The export is always JSON (it is the document handed to the person); --json is accepted
    for uniformity with the other commands."""
    from msgine.server.accounts import list_accounts
    from msgine.server.compliance import export_number, holds_anything
    from msgine.server.events import iso
    from msgine.server.messages import normalize_number

    del as_json
    number = normalize_number(phone, field="phone")
    actor = cli_actor()
    with runtime() as rt, progress("exporting") as advance:
        now = rt.now()
        account_ids = [a["id"] for a in rt.db.read(list_accounts)]
        found = rt.db.write(
            lambda conn: export_number(conn, rt.vault, account_ids, number, actor=actor, now=now)
        )
        advance(1)
    emit_json(
        {
            "phone": number,
            "exportedAt": iso(now),
            "accounts": [export for export in found if holds_anything(export)],
        }
    )


def _plan(found: list[dict[str, Any]]) -> list[str]:
    lines = ["This erases the number from every account that holds it:"]
    for counts in found:
        held = ", ".join(f"{k} {v}" for k, v in counts.items() if k != "accountId" and v)
        lines.append(f"  {counts['accountId']}: {held}")
    lines.append(
        "Messages lose their text and this number, inbound messages, consents and events go; "
        "a suppression is kept without the number (so it still blocks). It cannot be undone."
    )
    return lines


@privacy.command("erase")
def erase(
    phone: Phone,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = True,
) -> None:
    """Erase the number from every account (asks first; --yes for scripts, --dry-run to see what
    would go). Prints JSON: what was removed, as counts only."""
    from msgine.server.accounts import list_accounts
    from msgine.server.compliance import erase_number, preview_erase
    from msgine.server.messages import normalize_number

    del as_json
    number = normalize_number(phone, field="phone")
    actor = cli_actor()
    with runtime() as rt:
        account_ids = [a["id"] for a in rt.db.read(list_accounts)]
        found = rt.db.read(lambda conn: preview_erase(conn, rt.vault, account_ids, number))
        if not found:
            say("no account holds anything about this number: nothing to erase")
            emit_json({"erased": False, "found": False, "accounts": []})
            return
        if dry_run:
            for line in _plan(found)[:-1]:
                say(line)
            emit_json({"erased": False, "found": True, "dryRun": True, "wouldErase": found})
            return
        confirm(_plan(found), question="Erase this number?", yes=yes)
        with progress("erasing"):
            results = erase_number(rt, [f["accountId"] for f in found], number, actor=actor)
    emit_json({"erased": True, "found": True, "accounts": results})
