"""``msgine privacy``: export or erase everything held about a phone number, in every account."""

from __future__ import annotations

from typing import Annotated

import typer

from msgine.cli._app import app, cli_actor, emit_json, runtime

privacy = typer.Typer(help="Data-subject requests for one phone number.", no_args_is_help=True)
app.add_typer(privacy, name="privacy")

Phone = Annotated[str, typer.Option("--phone", help="The number, in international form")]


@privacy.command("export")
def export(phone: Phone) -> None:
    """Print, as JSON, everything any account holds about the number (recorded in the audit)."""
    from msgine.server.accounts import list_accounts
    from msgine.server.compliance._privacy import export_number, holds_anything
    from msgine.server.events import iso
    from msgine.server.messages._numbers import normalize_number

    number = normalize_number(phone, field="phone")
    actor = cli_actor()
    with runtime() as rt:
        now = rt.now()
        account_ids = [a["id"] for a in rt.db.read(list_accounts)]
        found = rt.db.write(
            lambda conn: export_number(conn, rt.vault, account_ids, number, actor=actor, now=now)
        )
    emit_json(
        {
            "phone": number,
            "exportedAt": iso(now),
            "accounts": [export for export in found if holds_anything(export)],
        }
    )


@privacy.command("erase")
def erase(phone: Phone) -> None:
    """Erase the number from every account; prints what was removed (counts only)."""
    from msgine.server.accounts import list_accounts
    from msgine.server.compliance._privacy import erase_number
    from msgine.server.messages._numbers import normalize_number

    number = normalize_number(phone, field="phone")
    actor = cli_actor()
    with runtime() as rt:
        account_ids = [a["id"] for a in rt.db.read(list_accounts)]
        results = erase_number(rt, account_ids, number, actor=actor)
    emit_json({"erased": True, "accounts": results})
