"""``msgine webhooks listen`` and ``msgine webhooks trigger``: webhook receivers on a laptop.

See :mod:`msgine.server.webhooks._listen` for how events are followed and signed, and
docs/webhooks-receiving.md ("Developing locally") for the workflow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from msgine.cli._app import app, emit_json, fail, runtime

webhooks = typer.Typer(help="Webhooks: develop receivers locally.", no_args_is_help=True)
app.add_typer(webhooks, name="webhooks")

AccountOption = Annotated[
    str | None,
    typer.Option("--account", help="Account name or id (default: the first account)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line")]


def _account_id(rt: Any, account: str | None) -> str:
    from msgine.server.accounts import find_account, list_accounts

    if account:
        return str(rt.db.read(lambda conn: find_account(conn, account))["id"])
    rows = rt.db.read(list_accounts)
    if not rows:
        fail("no account exists yet; run 'msgine serve' once or 'msgine accounts create NAME'")
    return str(rows[0]["id"])


@webhooks.command("listen")
def listen(
    forward_to: Annotated[
        str | None,
        typer.Option(
            "--forward-to", help="Local URL to POST each event to, e.g. http://localhost:9000/hook"
        ),
    ] = None,
    account: AccountOption = None,
    print_secret: Annotated[
        bool, typer.Option("--print-secret", help="Print the signing secret and exit")
    ] = False,
    as_json: JsonOption = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, help="Seconds between polls")
    ] = 0.5,
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=1, help="Exit after forwarding this many")
    ] = None,
) -> None:
    """Forward this account's test-mode events to a local URL, signed as real deliveries are."""
    import httpx

    from msgine.server.webhooks import (
        ListenSession,
        check_forward_url,
        follow,
        forward,
        listen_secret,
    )

    with runtime() as rt:
        account_id = _account_id(rt, account)
        secret = listen_secret(rt.vault, account_id)
        if print_secret:
            typer.echo(secret)
            return
        if forward_to is None:
            fail("--forward-to URL is required (or --print-secret)", code=2)
        url = check_forward_url(forward_to)
        # Registered before "Ready": every event raised after it is stored and forwarded.
        with (
            ListenSession(rt.db, rt.vault, account_id, rt.now) as session,
            httpx.Client(timeout=10, follow_redirects=False, trust_env=False) as client,
        ):
            _ready(account_id, url, secret, as_json)
            try:
                for event in follow(session.poll, interval, max_events):
                    _show(forward(client, url, secret, event), as_json)
            except KeyboardInterrupt:
                pass


def _ready(account_id: str, url: str, secret: str, as_json: bool) -> None:
    if as_json:
        emit_json({"ready": True, "account": account_id, "forwardTo": url, "secret": secret})
        return
    typer.echo(f"Ready. Forwarding test-mode events of account {account_id} to {url}")
    typer.echo(f"Your webhook signing secret is {secret} (stable for this account on this machine)")
    typer.echo("  export MSGINE_WEBHOOK_SECRET=" + secret)
    typer.echo("Press Ctrl+C to stop; 'msgine webhooks trigger message.delivered' sends one.")


def _show(result: Any, as_json: bool) -> None:
    event = result.event
    if as_json:
        emit_json(
            {
                "id": event.id,
                "event": event.type,
                "status": result.status,
                "latencyMs": result.latency_ms,
                "error": result.error,
            }
        )
        return
    when = datetime.now(UTC).strftime("%H:%M:%S")
    answer = f"[{result.status}]" if result.status is not None else f"[no answer: {result.error}]"
    typer.echo(f"{when}  --> {event.type} {event.id}  <-- {answer} {result.latency_ms} ms")


@webhooks.command("trigger")
def trigger(
    event: Annotated[str, typer.Argument(help="message.delivered, message.failed, ...")],
    account: AccountOption = None,
    as_json: JsonOption = False,
) -> None:
    """Raise a signed test-mode event with made-up content; running listen sessions forward it
    (webhook endpoints do not get it; with no session running it is not stored)."""
    from msgine.server.webhooks import trigger_test_event as raise_event

    with runtime() as rt:
        account_id = _account_id(rt, account)
        now = rt.now()
        event_id = rt.db.write(lambda conn: raise_event(conn, rt.vault, account_id, event, now))
    if as_json:
        emit_json({"id": event_id, "event": event, "account": account_id})
        return
    if event_id is None:
        typer.echo(f"No listen session of account {account_id} is running: nothing to forward it.")
        return
    typer.echo(f"Triggered {event} {event_id}; 'msgine webhooks listen' forwards it.")
