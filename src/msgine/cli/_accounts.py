"""``msgine accounts``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from msgine.cli._app import app, cli_actor, runtime
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


@accounts.command("set-daily-cap")
def set_daily_cap(
    account: Annotated[str, typer.Argument(help="Account id or name")],
    cap: Annotated[
        str, typer.Argument(help="Messages per day; 0 for no cap; 'default' for MSGINE_DAILY_CAP")
    ],
    as_json: JsonOption = False,
) -> None:
    """The operator's daily cap for one account (the account may only lower it)."""
    from msgine.server.accounts import find_account, update_policy
    from msgine.server.audit import record

    value: int | None = None
    if cap != "default":
        if not cap.isdigit():
            raise typer.BadParameter("CAP must be a whole number of messages, 0 or 'default'")
        value = int(cap)
    with runtime() as rt:
        now = rt.now()

        def apply(conn: Any) -> str:
            account_id = str(find_account(conn, account)["id"])
            update_policy(conn, account_id, {"operatorDailyCap": value})
            record(
                conn,
                rt.vault,
                cli_actor(),
                "account.daily_cap_set",
                now=now,
                account_id=account_id,
                details={"operatorDailyCap": value},
            )
            return account_id

        account_id = rt.db.write(apply)
    emit(
        {"account": account_id, "operatorDailyCap": value},
        as_json,
        lambda r: typer.echo(f"{account_id}\t{'default' if value is None else value}"),
    )
