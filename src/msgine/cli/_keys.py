"""``msgine keys``: create, list, rotate, revoke, compromise; audited as ``cli:<user>``."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer

from msgine.cli._app import app, cli_actor, fail, runtime
from msgine.cli._confirm import YesOption, confirm
from msgine.cli._output import JsonOption, emit, emit_json, say, table

keys = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys, name="keys")

KeyId = Annotated[str, typer.Argument(metavar="ID", help="The key's id (key_...)")]


class Mode(enum.StrEnum):
    test = "test"
    live = "live"


def _account_id(rt: Any, account: str | None) -> str:
    from msgine.server.accounts import find_account, list_accounts

    if account:
        return str(rt.db.read(lambda conn: find_account(conn, account))["id"])
    rows = rt.db.read(list_accounts)
    if not rows:
        fail("no account exists yet; run 'msgine init' once or 'msgine accounts create NAME'")
    return str(rows[0]["id"])


def show_new_key(new: Any, now: Any, as_json: bool) -> None:
    from msgine.server.keys import public_view

    view = public_view(new.record, now)
    if as_json:
        emit_json({**view, "key": new.secret})
        return
    typer.echo(f"id:      {view['id']}")
    typer.echo(f"account: {view['account']}")
    typer.echo(f"mode:    {view['mode']}")
    typer.echo(f"scopes:  {','.join(view['scopes'])}")
    typer.echo(f"key:     {new.secret}")
    say("Store this key now: it is shown only once.")


@keys.command("create")
def create(
    account: Annotated[
        str | None, typer.Option(help="Account id or name (default: the first)")
    ] = None,
    name: Annotated[str, typer.Option(help="A label for the key")] = "",
    mode: Annotated[Mode, typer.Option(help="test or live")] = Mode.test,
    scopes: Annotated[
        str | None, typer.Option(help="Comma-separated scopes (default: all)")
    ] = None,
    allow_ip: Annotated[
        list[str] | None, typer.Option("--allow-ip", help="Allowed CIDR (repeatable)")
    ] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=3650)] = None,
    rate_limit: Annotated[str | None, typer.Option(help="e.g. '100/minute;20/second'")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key; it is printed once and stored only as a keyed hash."""
    from msgine.server.keys import create_key, parse_scopes

    chosen = parse_scopes(scopes.split(",")) if scopes is not None else None  # before opening
    with runtime() as rt:
        account_id = _account_id(rt, account)
        now = rt.now()
        new = rt.db.write(
            lambda conn: create_key(
                conn,
                rt.vault,
                account_id=account_id,
                now=now,
                name=name,
                mode=mode.value,
                scopes=chosen,
                allowed_ips=allow_ip,
                expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
                rate_limit=rate_limit,
                created_by="cli",
                actor=cli_actor(),
            )
        )
    show_new_key(new, now, as_json)


def _status(view: dict[str, Any]) -> str:
    """What a person needs from a key's state: a rotated key still working shows until when."""
    if view["status"] == "active" and view["expiresAt"]:
        day = view["expiresAt"][:16].replace("T", " ")
        return f"grace until {day}Z" if view["replacedBy"] else f"active, expires {day}Z"
    return str(view["status"])


def _age(view: dict[str, Any]) -> str:
    from msgine.server.keys import ROTATION_AGE_DAYS

    due = view["rotationDue"] and view["status"] == "active"
    return f"{view['ageDays']}d" + (f"  ROTATE (>{ROTATION_AGE_DAYS} days)" if due else "")


def _when(value: str | None, now: datetime) -> str:
    if value is None:
        return "never"
    then = datetime.fromisoformat(value.replace("Z", "+00:00"))
    days = (now - then).days
    return f"{value[:16].replace('T', ' ')}Z" + (f" ({days}d ago)" if days else "")


@keys.command("list")
def list_(
    account: Annotated[str | None, typer.Option(help="Only this account")] = None,
    as_json: JsonOption = False,
) -> None:
    """Keys with their state, age and last use; secrets are never shown."""
    from msgine.server.keys import list_keys, public_view

    with runtime() as rt:
        account_id = _account_id(rt, account) if account else None
        now = rt.now()
        views = [public_view(r, now) for r in rt.db.read(lambda conn: list_keys(conn, account_id))]

    def render(items: list[dict[str, Any]]) -> None:
        if not items:
            say("no keys; create one with: msgine keys create --name NAME")
            return
        table(
            ["ID", "NAME", "MODE", "STATUS", "LAST USED", "AGE", "KEY"],
            [
                [
                    v["id"],
                    v["name"] or "-",
                    v["mode"],
                    _status(v),
                    _when(v["lastUsedAt"], now),
                    _age(v),
                    v["redactedKey"],
                ]
                for v in items
            ],
        )

    emit(views, as_json, render)


@keys.command("rotate")
def rotate(
    key_id: KeyId,
    grace_hours: Annotated[
        float, typer.Option(min=0, max=720, help="Old key keeps working this long")
    ] = 24,
    as_json: JsonOption = False,
) -> None:
    """Issue a replacement key; the old one works until the grace period ends."""
    from msgine.server.keys import rotate_key

    with runtime() as rt:
        now = rt.now()
        new = rt.db.write(
            lambda conn: rotate_key(
                conn,
                rt.vault,
                key_id,
                now=now,
                grace=timedelta(hours=grace_hours),
                actor=cli_actor(),
            )
        )
    show_new_key(new, now, as_json)


def _describe_key(rt: Any, key_id: str) -> dict[str, Any]:
    """The key as a listing shows it (raises 'API key not found.' before anything is asked)."""
    from msgine.server.keys import get_key, public_view

    return public_view(rt.db.read(lambda conn: get_key(conn, key_id)), rt.now())


def _key_line(view: dict[str, Any]) -> str:
    return (
        f"  {view['id']}  {view['name'] or '-'}  {view['mode']}  {_status(view)}  "
        f"{view['redactedKey']}  account {view['account']}  last used "
        f"{view['lastUsedAt'] or 'never'}"
    )


@keys.command("revoke")
def revoke(key_id: KeyId, yes: YesOption = False, as_json: JsonOption = False) -> None:
    """Revoke a key at once, in every process (asks first; --yes for scripts)."""
    from msgine.server.keys import public_view, revoke_key

    with runtime() as rt:
        view = _describe_key(rt, key_id)
        if view["status"] == "revoked":
            say(f"{key_id} is already revoked: nothing to do")
        else:
            confirm(
                [
                    "This revokes the key:",
                    _key_line(view),
                    "Every request with it is refused from the next one on, in every process, "
                    "and webhooks get key.revoked. It cannot be undone.",
                ],
                question=f"Revoke {key_id}?",
                yes=yes,
            )
        now = rt.now()
        record = rt.db.write(
            lambda conn: revoke_key(conn, key_id, now=now, vault=rt.vault, actor=cli_actor())
        )
        view = public_view(record, now)
    emit(view, as_json, lambda v: typer.echo(f"revoked {v['id']}"))


@keys.command("compromise")
def compromise(key_id: KeyId, yes: YesOption = False, as_json: JsonOption = False) -> None:
    """Revoke a leaked key now, issue its replacement (shown once) and report its usage."""
    from msgine.cli._audit import security_logging
    from msgine.server.incident import compromise as contain
    from msgine.server.keys import public_view

    with runtime() as rt:
        view = _describe_key(rt, key_id)
        if view["status"] == "active":  # otherwise containment refuses, saying why
            confirm(
                [
                    "This treats the key as leaked:",
                    _key_line(view),
                    "It is revoked now (every request refused), a replacement with the same "
                    "settings is issued and shown once, webhooks get key.revoked, and its "
                    "usage is reported.",
                ],
                question=f"Contain {key_id} as compromised?",
                yes=yes,
            )
        security_logging(rt.settings)
        now = rt.now()
        result = contain(rt.db, rt.vault, key_id, now=now, actor=cli_actor())
    replacement = {**public_view(result.replacement.record, now), "key": result.replacement.secret}
    if as_json:
        # The same shape as POST /keys/{id}/compromise: the replacement, then the report.
        emit_json({**replacement, "compromisedKeyId": key_id, "report": result.report})
        return
    report = result.report
    typer.echo(f"revoked {key_id} (compromised); webhooks get key.revoked")
    typer.echo(f"replacement id: {replacement['id']}")
    typer.echo(f"replacement key: {result.replacement.secret}")
    say("Store the replacement now: it is shown only once.")
    typer.echo(
        f"usage: first={report['firstUsedAt'] or 'never'} last={report['lastUsedAt'] or 'never'} "
        f"requests={report['totalRequests']} messages={report['messagesSent']}"
    )
    for row in report["requestsByAddress"]:
        typer.echo(f"  {row['sourceIp']}: {row['requests']} requests")
