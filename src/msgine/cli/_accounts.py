"""``msgine accounts``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from msgine.cli._app import app, runtime
from msgine.cli._output import JsonOption, emit, table

accounts = typer.Typer(help="Accounts.", no_args_is_help=True)
app.add_typer(accounts, name="accounts")


@accounts.command("create")
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Account name (unique)")],
    as_json: JsonOption = False,
) -> None:
    """Create an account; its name must be unused (commands pick accounts by id or name)."""
    from msgine.server.accounts import create_account

    if not name.strip() or len(name) > 200:
        raise typer.BadParameter("NAME must be 1 to 200 characters", param_hint="'NAME'")
    with runtime() as rt:
        now = rt.now()
        account_id = rt.db.write(lambda conn: create_account(conn, name.strip(), now))
    created = {"id": account_id, "name": name.strip(), "createdAt": now.isoformat()}
    emit(created, as_json, lambda c: typer.echo(f"{c['id']}\t{c['name']}"))


@accounts.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Every account, oldest first."""
    from msgine.server.accounts import list_accounts

    with runtime() as rt:
        rows = rt.db.read(list_accounts)
    items = [
        {"id": r["id"], "name": r["name"], "createdAt": r["created_at"].isoformat()} for r in rows
    ]

    def render(found: list[dict[str, Any]]) -> None:
        table(["ID", "NAME", "CREATED"], [[a["id"], a["name"], a["createdAt"]] for a in found])

    emit(items, as_json, render)
