"""``msgine carriers`` and ``msgine routes``: operator configuration, audited as ``cli:<user>``.

Credentials are read from a JSON file (or ``-`` for standard input), never from an argument: an
argument shows in the process list and the shell's history. They are never printed back.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from msgine.cli._app import app, cli_actor, fail, runtime
from msgine.cli._output import JsonOption, emit, emit_json, say, table

carriers_cli = typer.Typer(help="Carriers: where messages leave the gateway.", no_args_is_help=True)
routes_cli = typer.Typer(help="Routes: destinations -> ordered carriers.", no_args_is_help=True)
app.add_typer(carriers_cli, name="carriers")
app.add_typer(routes_cli, name="routes")

OptionPairs = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", help="A kind's setting, KEY=VALUE (repeatable; JSON values)"),
]
CredentialsFile = Annotated[
    str | None,
    typer.Option(help="JSON file of the kind's credentials ('-': standard input)"),
]


def _audited(change: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one configuration change in a write, as the operator and now (it audits itself)."""
    with runtime() as rt:
        now = rt.now()
        return rt.db.write(
            lambda conn: change(conn, rt.vault, *args, now=now, actor=cli_actor(), **kwargs)
        )


def _options(pairs: list[str] | None) -> dict[str, Any]:
    """KEY=VALUE pairs; a value that parses as JSON (numbers, true, lists) is taken as such."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--option takes KEY=VALUE, got {key.strip() or pair!r}", 2)
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


def _credentials(source: str | None) -> dict[str, Any] | None:
    if source is None:
        return None
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        loaded = json.loads(text)
    except OSError as exc:
        fail(f"cannot read --credentials-file: {exc.strerror}", 2)
    except ValueError:
        fail("--credentials-file must hold a JSON object", 2)  # never echo its content
    if not isinstance(loaded, dict):
        fail("--credentials-file must hold a JSON object", 2)
    return loaded


def _show_carrier(view: dict[str, Any]) -> None:
    creds = view["credentials"]
    typer.echo(f"name:        {view['name']}")
    typer.echo(f"id:          {view['id']}")
    typer.echo(f"kind:        {view['kind']}")
    typer.echo(f"enabled:     {str(view['enabled']).lower()}")
    typer.echo(f"options:     {json.dumps(view['options'], sort_keys=True)}")
    typer.echo(
        "credentials: " + (f"set ({', '.join(creds['fields'])})" if creds["set"] else "not set")
    )
    typer.echo(f"on uncertain submit: {view['onUncertainSubmit']}")
    typer.echo(f"retry budget: {view['retryBudget']}")
    if view["inboundAccount"]:
        typer.echo(f"inbound account: {view['inboundAccount']}")
    if "callbackUrl" in view:
        typer.echo(f"callback URL: {view['callbackUrl']}")
        typer.echo(
            "  Configure it at the provider now: it is shown only once."
            " `msgine carriers rotate-callback NAME` makes a new one.",
            err=True,
        )
        if view.get("publicUrlMissing"):
            typer.echo(
                "  MSGINE_PUBLIC_URL is not set: replace the placeholder with the gateway's"
                " public https address.",
                err=True,
            )


def _with_callback_url(view: dict[str, Any]) -> dict[str, Any]:
    """The view with its one-time callback token turned into the URL the provider calls."""
    from msgine.server.carriers import callback_url

    token = view.pop("callbackToken", None)
    if token is None:
        return view
    with runtime() as rt:
        public = rt.settings.public_url
    url = callback_url(public, view["name"], token)
    return {**view, "callbackUrl": url, "publicUrlMissing": public is None}


@carriers_cli.command("rotate-callback")
def rotate_callback(
    name: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask")] = False,
    as_json: JsonOption = False,
) -> None:
    """A new callback URL (shown once); the old one stops working at once."""
    from msgine.server.carriers import rotate_callback_token

    if not yes and not typer.confirm(
        f"Replace {name}'s callback URL? The provider must be given the new one.", default=False
    ):
        fail("aborted", 1)
    view = _with_callback_url(_audited(rotate_callback_token, name))
    emit(view, as_json, _show_carrier)


@carriers_cli.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for this carrier, e.g. mtn-ug")],
    kind: Annotated[str, typer.Option(help="simulator, smpp, ...")],
    option: OptionPairs = None,
    credentials_file: CredentialsFile = None,
    on_uncertain_submit: Annotated[
        str, typer.Option(help="After a crash mid-submit: mark_unknown (never twice) or resubmit")
    ] = "mark_unknown",
    retry_budget: Annotated[
        int, typer.Option(help="Retries on this carrier before the route's next takes over")
    ] = 3,
    inbound_account: Annotated[
        str | None, typer.Option(help="Account receiving this carrier's inbound SMS")
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it switched off")] = False,
    as_json: JsonOption = False,
) -> None:
    """Add a carrier; its credentials are stored encrypted and never shown again."""
    from msgine.server.carriers import add_carrier

    opts, creds = _options(option), _credentials(credentials_file)
    view = _with_callback_url(
        _audited(
            add_carrier,
            name=name,
            kind=kind,
            options=opts,
            credentials=creds,
            enabled=not disabled,
            on_uncertain_submit=on_uncertain_submit,
            retry_budget=retry_budget,
            inbound_account_id=inbound_account,
        )
    )
    emit(view, as_json, _show_carrier)


@carriers_cli.command("update")
def update(
    name: Annotated[str, typer.Argument()],
    option: OptionPairs = None,
    credentials_file: CredentialsFile = None,
    enable: Annotated[bool | None, typer.Option("--enable/--disable")] = None,
    on_uncertain_submit: Annotated[str | None, typer.Option()] = None,
    retry_budget: Annotated[int | None, typer.Option()] = None,
    inbound_account: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOption = False,
) -> None:
    """Change settings (options merge over the stored ones; credentials replace them)."""
    from msgine.server.carriers import update_carrier

    opts, creds = _options(option), _credentials(credentials_file)
    view = _audited(
        update_carrier,
        name,
        options=opts,
        credentials=creds,
        enabled=enable,
        on_uncertain_submit=on_uncertain_submit,
        retry_budget=retry_budget,
        inbound_account_id=inbound_account,
    )
    emit(view, as_json, _show_carrier)


@carriers_cli.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Carriers (credentials never shown)."""
    from msgine.server.carriers import list_carriers

    with runtime() as rt:
        views = rt.db.read(lambda conn: list_carriers(conn, rt.vault))

    def render(items: list[dict[str, Any]]) -> None:
        if not items:
            say("no carriers; add one with: msgine carriers add NAME --kind KIND")
            return
        table(
            ["NAME", "KIND", "STATE", "ID"],
            [
                [v["name"], v["kind"], "enabled" if v["enabled"] else "disabled", v["id"]]
                for v in items
            ],
        )

    emit(views, as_json, render)


@carriers_cli.command("show")
def show(name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    from msgine.server.carriers import get_carrier

    with runtime() as rt:
        view = rt.db.read(lambda conn: get_carrier(conn, rt.vault, name))
    emit(view, as_json, _show_carrier)


@carriers_cli.command("remove")
def remove(
    name: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask")] = False,
    as_json: JsonOption = False,
) -> None:
    """Remove a carrier no route uses."""
    from msgine.server.carriers import remove_carrier

    if not yes and not typer.confirm(f"Remove carrier {name}?", default=False):
        fail("aborted", 1)
    _audited(remove_carrier, name)
    emit_json({"removed": name}) if as_json else typer.echo(f"removed {name}")


@carriers_cli.command("status")
def status(as_json: JsonOption = False) -> None:
    """Each carrier's state as its workers last published it (binds, window in use)."""
    from msgine.server.carriers import carrier_status as read_status

    with runtime() as rt:
        now = rt.now()
        interval = rt.settings.carrier_health_interval
        found = rt.db.read(lambda conn: read_status(conn, now, interval))
    emit(found, as_json, _show_status)


def _show_status(found: dict[str, Any]) -> None:
    typer.echo(f"carriers: {found['state']}")
    if found["carriers"]:
        table(
            ["NAME", "KIND", "STATE", "WORKERS", "BINDS", "WINDOW", "DETAIL"],
            [
                [
                    name,
                    item["kind"],
                    item["state"],
                    str(item["workers"]),
                    f"{item['bindsUp']}/{item['bindsWanted']}",
                    str(item["windowInUse"]),
                    item["detail"] or "",
                ]
                for name, item in sorted(found["carriers"].items())
            ],
        )
    for route_id in found["unservedRoutes"]:
        say(f"route {route_id}: no carrier serving")


# --- routes -------------------------------------------------------------------------------


def _show_routes(found: dict[str, Any] | list[dict[str, Any]]) -> None:
    """One route (``add``, ``show``) or a list of them, as a table."""
    views = [found] if isinstance(found, dict) else found
    if not views:
        say("no routes; add one with: msgine routes add --country CC --carriers NAME ...")
        return
    table(
        ["ID", "DESTINATION", "CARRIERS", "PRICE", "ACCOUNT"],
        [
            [
                v["id"],
                f"+{v['prefix']}" if v["prefix"] else v["country"],
                " > ".join(v["carriers"]),
                f"{v['pricePerSegment']} {v['currency']}/segment",
                v["account"] or "all accounts",
            ]
            for v in views
        ],
    )


@routes_cli.command("add")
def route_add(
    carriers: Annotated[str, typer.Option(help="Carrier names in failover order, comma-separated")],
    price: Annotated[int, typer.Option(help="Price per segment (minor units)", min=0)],
    currency: Annotated[str, typer.Option(help="ISO 4217 code")],
    prefix: Annotated[str | None, typer.Option(help="E.164 digits, e.g. 256 or +25670")] = None,
    country: Annotated[str | None, typer.Option(help="ISO country code, e.g. UG")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account (id or name)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Route a prefix or a country to carriers, tried in order."""
    from msgine.server.carriers import add_route

    names = [n.strip() for n in carriers.split(",") if n.strip()]
    view = _audited(
        add_route,
        carrier_names=names,
        price_per_segment=price,
        currency=currency,
        prefix=prefix,
        country=country,
        account_id=account,
    )
    emit(view, as_json, _show_routes)


@routes_cli.command("list")
def route_list(
    account: Annotated[str | None, typer.Option(help="Routes that apply to this account")] = None,
    as_json: JsonOption = False,
) -> None:
    from msgine.server.accounts import find_account
    from msgine.server.carriers import list_routes

    with runtime() as rt:

        def read(conn: Any) -> list[dict[str, Any]]:
            account_id = str(find_account(conn, account)["id"]) if account else None
            return list_routes(conn, account_id)

        views = rt.db.read(read)
    emit(views, as_json, _show_routes)


@routes_cli.command("show")
def route_show(
    route_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOption = False
) -> None:
    from msgine.server.carriers import get_route

    with runtime() as rt:
        view = rt.db.read(lambda conn: get_route(conn, route_id))
    emit(view, as_json, _show_routes)


@routes_cli.command("remove")
def route_remove(
    route_id: Annotated[str, typer.Argument(metavar="ID")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask")] = False,
    as_json: JsonOption = False,
) -> None:
    from msgine.server.carriers import remove_route

    if not yes and not typer.confirm(f"Remove route {route_id}?", default=False):
        fail("aborted", 1)
    _audited(remove_route, route_id)
    emit_json({"removed": route_id}) if as_json else typer.echo(f"removed {route_id}")
