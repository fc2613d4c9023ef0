"""``msgine keys``: create, list, rotate, revoke, compromise; audited as ``cli:<user>``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer

from msgine.cli._app import app, cli_actor, emit_json, fail, runtime

keys = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys, name="keys")


def _account_id(rt: Any, account: str | None) -> str:
    from msgine.server.accounts import find_account, list_accounts

    if account:
        return str(rt.db.read(lambda conn: find_account(conn, account))["id"])
    rows = rt.db.read(list_accounts)
    if not rows:
        fail("no account exists yet; run 'msgine serve' once or 'msgine accounts create NAME'")
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
    typer.echo("Store this key now: it is shown only once.", err=True)


@keys.command("create")
def create(
    account: Annotated[
        str | None, typer.Option(help="Account id or name (default: the first)")
    ] = None,
    name: Annotated[str, typer.Option(help="A label for the key")] = "",
    mode: Annotated[str, typer.Option(help="test or live")] = "test",
    scopes: Annotated[
        str | None, typer.Option(help="Comma-separated scopes (default: all)")
    ] = None,
    allow_ip: Annotated[
        list[str] | None, typer.Option("--allow-ip", help="Allowed CIDR (repeatable)")
    ] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=3650)] = None,
    rate_limit: Annotated[str | None, typer.Option(help="e.g. '100/minute;20/second'")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create an API key; it is printed once and stored only as a keyed hash."""
    from msgine.server.keys import create_key

    if mode not in ("test", "live"):
        fail("--mode must be 'test' or 'live'")
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
                mode=mode,  # type: ignore[arg-type]
                scopes=scopes.split(",") if scopes is not None else None,
                allowed_ips=allow_ip,
                expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
                rate_limit=rate_limit,
                created_by="cli",
                actor=cli_actor(),
            )
        )
    show_new_key(new, now, as_json)


@keys.command("list")
def list_(
    account: Annotated[str | None, typer.Option(help="Only this account")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Keys with their state, age and last use; secrets are never shown."""
    from msgine.server.keys import list_keys, public_view

    with runtime() as rt:
        account_id = _account_id(rt, account) if account else None
        now = rt.now()
        views = [public_view(r, now) for r in rt.db.read(lambda conn: list_keys(conn, account_id))]
    if as_json:
        emit_json(views)
        return
    for v in views:
        flag = (
            "  ROTATE (older than 90 days)" if v["rotationDue"] and v["status"] == "active" else ""
        )
        typer.echo(
            f"{v['id']}  {v['mode']:4}  {v['status']:7}  {v['redactedKey']}  "
            f"age={v['ageDays']}d  last_used={v['lastUsedAt'] or 'never'}{flag}"
        )


@keys.command("rotate")
def rotate(
    key_id: Annotated[str, typer.Argument(metavar="ID")],
    grace_hours: Annotated[
        float, typer.Option(min=0, max=720, help="Old key keeps working this long")
    ] = 24,
    as_json: Annotated[bool, typer.Option("--json")] = False,
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


@keys.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a key at once, in every process."""
    from msgine.server.keys import revoke_key

    with runtime() as rt:
        now = rt.now()
        rt.db.write(
            lambda conn: revoke_key(conn, key_id, now=now, vault=rt.vault, actor=cli_actor())
        )
    typer.echo(f"revoked {key_id}")


@keys.command("compromise")
def compromise(
    key_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Revoke a leaked key now, issue its replacement (shown once) and report its usage."""
    from msgine.cli._audit import security_logging
    from msgine.server.incident import compromise as contain
    from msgine.server.keys import public_view

    with runtime() as rt:
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
    typer.echo("Store the replacement now: it is shown only once.", err=True)
    typer.echo(
        f"usage: first={report['firstUsedAt'] or 'never'} last={report['lastUsedAt'] or 'never'} "
        f"requests={report['totalRequests']} messages={report['messagesSent']}"
    )
    for row in report["requestsByAddress"]:
        typer.echo(f"  {row['sourceIp']}: {row['requests']} requests")
