"""``msgine accounts``."""

from __future__ import annotations

from typing import Annotated

import typer

from msgine.cli._app import app, emit_json, runtime

accounts = typer.Typer(help="Accounts.", no_args_is_help=True)
app.add_typer(accounts, name="accounts")


@accounts.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Account name")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    from msgine.server.accounts import create_account

    if not name.strip() or len(name) > 200:
        raise typer.BadParameter("NAME must be 1 to 200 characters")
    with runtime() as rt:
        now = rt.now()
        account_id = rt.db.write(lambda conn: create_account(conn, name.strip(), now))
    if as_json:
        emit_json({"id": account_id, "name": name.strip(), "createdAt": now.isoformat()})
    else:
        typer.echo(f"{account_id}\t{name.strip()}")


@accounts.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    from msgine.server.accounts import list_accounts

    with runtime() as rt:
        rows = rt.db.read(list_accounts)
    items = [
        {"id": r["id"], "name": r["name"], "createdAt": r["created_at"].isoformat()} for r in rows
    ]
    if as_json:
        emit_json(items)
    else:
        for item in items:
            typer.echo(f"{item['id']}\t{item['name']}")
