"""``msgine keys usage ID``: a key's usage report, read now (also after a compromise)."""

from __future__ import annotations

from typing import Annotated

import typer

from msgine.cli._app import emit_json, runtime
from msgine.cli._keys import keys


@keys.command("usage")
def usage(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Requests by address and hour, messages sent, and requests refused since revocation."""
    from msgine.server.incident import usage_report
    from msgine.server.keys import get_key

    with runtime() as rt:
        report = rt.db.read(lambda conn: usage_report(conn, get_key(conn, key_id)))
    if as_json:
        emit_json(report)
        return
    typer.echo(f"key:      {report['keyId']} ({report['mode']}, account {report['account']})")
    typer.echo(f"revoked:  {report['revokedAt'] or 'no'}")
    typer.echo(
        f"usage:    first={report['firstUsedAt'] or 'never'} "
        f"last={report['lastUsedAt'] or 'never'} requests={report['totalRequests']} "
        f"messages={report['messagesSent']}"
    )
    for row in report["requestsByAddress"]:
        typer.echo(f"  {row['sourceIp']}: {row['requests']}")
    typer.echo(f"refused after revocation: {report['refusedAfterRevocation']}")
    for row in report["refusedByAddress"]:
        typer.echo(f"  {row['sourceIp']}: {row['requests']}")
