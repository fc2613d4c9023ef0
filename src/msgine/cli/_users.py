"""``msgine users``: console users (create, list, disable, reset-2fa); audited as ``cli:<user>``.

``create`` makes a one-time password by default, printed once: the user signs in with it, sets
up two-factor authentication and chooses their own password, so the operator never knows a
password in use. ``--ask-password`` instead asks for the password (twice, without echo; from
standard input when it is not a terminal), for an operator creating their own user.
"""

from __future__ import annotations

import enum
import sys
from typing import Annotated, Any

import typer

from msgine.cli._app import app, cli_actor, runtime
from msgine.cli._confirm import YesOption, confirm
from msgine.cli._keys import _account_id
from msgine.cli._output import JsonOption, emit, emit_json, say, table

users = typer.Typer(help="Console users (sign-in with password and TOTP).", no_args_is_help=True)
app.add_typer(users, name="users")

UserRef = Annotated[str, typer.Argument(metavar="USER", help="The user's id (usr_...) or e-mail")]


class Role(enum.StrEnum):
    owner = "owner"
    developer = "developer"
    viewer = "viewer"


@users.command("create")
def create(
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="The sign-in e-mail address")],
    role: Annotated[Role, typer.Option(help="owner, developer or viewer (see docs/console.md)")],
    account: Annotated[
        str | None, typer.Option(help="Account id or name (default: the first)")
    ] = None,
    ask_password: Annotated[
        bool, typer.Option("--ask-password", help="Ask for the password instead of making one")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a console user. Prints a one-time password once, unless --ask-password."""
    from msgine.server.console import create_user

    password = _ask() if ask_password else None
    with runtime() as rt:
        account_id = _account_id(rt, account)
        now = rt.now()
        new = rt.db.write(
            lambda conn: create_user(
                conn,
                rt.vault,
                account_id=account_id,
                email=email,
                role=role.value,
                now=now,
                actor=cli_actor(),
                password=password,
            )
        )
    if as_json:
        emit_json({**new.view, **({"password": new.password} if new.password else {})})
        return
    typer.echo(f"id:       {new.view['id']}")
    typer.echo(f"email:    {new.view['email']}")
    typer.echo(f"role:     {new.view['role']}")
    if new.password:
        typer.echo(f"password: {new.password}")
        say(
            "Hand this one-time password over privately: it is shown only once. At first "
            "sign-in the user sets up two-factor authentication and chooses a password."
        )
    else:
        say("At first sign-in the user sets up two-factor authentication.")


def _ask() -> str:
    """Twice without echo at a terminal; else the first line of standard input (scripts)."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return password


@users.command("list")
def list_(
    account: Annotated[str | None, typer.Option(help="Only this account's (id or name)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every console user, oldest first (never a password, hash or secret)."""
    from msgine.server.console import list_users

    with runtime() as rt:
        account_id = _account_id(rt, account) if account else None
        views = rt.db.read(lambda conn: list_users(conn, account_id))

    def render(items: list[dict[str, Any]]) -> None:
        rows = [
            [
                u["id"],
                u["email"],
                u["role"],
                u["account"],
                "on" if u["twoFactor"] else "not set up",
                "disabled" if u["disabled"] else "active",
                u["lastSignInAt"] or "never",
            ]
            for u in items
        ]
        table(["ID", "EMAIL", "ROLE", "ACCOUNT", "2FA", "STATE", "LAST SIGN-IN"], rows)

    emit(views, as_json, render)


@users.command("disable")
def disable(user: UserRef, yes: YesOption = False, as_json: JsonOption = False) -> None:
    """Disable a user: sign-in refused, every session ended now."""
    from msgine.server.console import disable_user

    confirm([f"This disables {user} and ends all their sessions."], question="Disable?", yes=yes)
    with runtime() as rt:
        now = rt.now()
        view = rt.db.write(
            lambda conn: disable_user(conn, rt.vault, user, now=now, actor=cli_actor())
        )
    emit(view, as_json, lambda v: typer.echo(f"disabled {v['id']}"))


@users.command("reset-2fa")
def reset_2fa(user: UserRef, yes: YesOption = False, as_json: JsonOption = False) -> None:
    """Forget a user's TOTP and recovery codes (lost phone); they enrol again at next sign-in."""
    from msgine.server.console import reset_two_factor

    confirm(
        [
            f"This removes two-factor authentication from {user} and ends all their sessions;",
            "they set it up again at next sign-in, with their password. Check who is asking.",
        ],
        question="Reset two-factor authentication?",
        yes=yes,
    )
    with runtime() as rt:
        now = rt.now()
        view = rt.db.write(
            lambda conn: reset_two_factor(conn, rt.vault, user, now=now, actor=cli_actor())
        )
    emit(view, as_json, lambda v: typer.echo(f"two-factor reset for {v['id']}"))
