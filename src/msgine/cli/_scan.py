"""``msgine scan PATH...``: leaked MsGine keys in files and git history (docs/leak-scanning.md).

Without ``--revoke`` the scan needs no gateway configuration and opens no database, so it runs
anywhere (pre-commit, CI). With ``--revoke`` it opens this gateway's database and revokes the
found keys that this gateway issued.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from msgine.cli._app import app, cli_actor, emit_json, fail, runtime
from msgine.cli._output import progress

EXIT_USAGE = 2


@app.command()
def scan(
    paths: Annotated[list[str], typer.Argument(metavar="PATH...", help="Files or directories")],
    no_history: Annotated[
        bool, typer.Option("--no-history", help="Only the files as they are now")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of findings")] = False,
    revoke: Annotated[
        bool, typer.Option("--revoke", help="Revoke found keys that this gateway issued")
    ] = False,
) -> None:
    """Find MsGine keys and master keys (redacted in the output); exit 1 when a live key, a
    master key or a committed gateway data file is found."""
    from msgine.server.scan import ScanError, format_finding, printable, scan_paths

    try:
        with progress("scanning files and history" if not no_history else "scanning files"):
            findings = scan_paths(paths, history=not no_history)
    except (FileNotFoundError, ScanError) as exc:
        fail(printable(str(exc)), EXIT_USAGE)
    api_keys = [f for f in findings if f.kind == "api_key"]
    revoked = _revoke(api_keys) if revoke and api_keys else {}
    if as_json:
        emit_json([{**f.to_dict(), **revoked.get(f.key, {})} for f in findings])
    else:
        for finding in findings:
            typer.echo(format_finding(finding))
        redacted = {f.key: f.redacted for f in findings}
        for key, outcome in revoked.items():
            typer.echo(f"{redacted[key]}: {_describe(outcome)}", err=True)
    live = sum(1 for f in api_keys if f.mode == "live")
    summary = f"{len(api_keys)} key(s) found, {live} live"
    others = len(findings) - len(api_keys)
    if others:
        summary += f"; {others} master key or gateway data finding(s)"
    typer.echo(summary, err=True)
    if any(f.fails for f in findings):
        raise typer.Exit(1)


def _revoke(findings: list[Any]) -> dict[str, dict[str, Any]]:
    """Revoke each distinct found key this gateway issued; keyed by the full key, in memory
    only (never printed)."""
    from msgine.cli._audit import security_logging
    from msgine.server.keys import find_by_secret, revoke_key

    outcomes: dict[str, dict[str, Any]] = {}
    with runtime() as rt:
        security_logging(rt.settings)
        now = rt.now()
        actor = cli_actor()
        for key in dict.fromkeys(f.key for f in findings):
            row = rt.db.read(lambda conn, k=key: find_by_secret(conn, rt.vault, k))
            if row is None:
                outcomes[key] = {"revoked": False, "keyId": None}
                continue
            already = row["revoked_at"] is not None
            if not already:
                rt.db.write(
                    lambda conn, i=row["id"]: revoke_key(
                        conn, i, now=now, reason="leaked", vault=rt.vault, actor=actor
                    )
                )
            outcomes[key] = {"revoked": True, "keyId": row["id"], "alreadyRevoked": already}
    return outcomes


def _describe(outcome: dict[str, Any]) -> str:
    if outcome["keyId"] is None:
        return "not issued by this gateway: left alone"
    if outcome["alreadyRevoked"]:
        return f"{outcome['keyId']}: already revoked"
    return f"revoked {outcome['keyId']}"
