"""``msgine audit verify`` and ``msgine audit list``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from msgine.cli._app import app, emit_json, runtime
from msgine.cli._output import JsonOption

audit = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit, name="audit")


def security_logging(settings: Any) -> None:
    """Send this command's security events to the configured security log, as ``serve`` does,
    so an alert raised from the command line is not lost. On stderr only warnings appear: a
    command's own output stays one line per result."""
    import logging

    from msgine.server.logging import configure_logging

    path = settings.security_log_path
    configure_logging(level="WARNING", security_log_path=str(path) if path else None)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)


@audit.command("verify")
def verify(
    anchor: Annotated[
        Path | None,
        typer.Option(
            help="A published head: the MSGINE_AUDIT_ANCHOR_FILE file, or a security log "
            "(its newest audit_head event). Entries missing after it fail the check.",
        ),
    ] = None,
    anchor_seq: Annotated[
        int | None, typer.Option(min=1, max=2**62, help="A published head's sequence number")
    ] = None,
    anchor_hash: Annotated[
        str | None, typer.Option(help="A published head's hash (64 hex characters)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the whole chain: exit 1 naming the first edited, deleted or reordered entry, or,
    against a published head, a chain whose newest entries were cut off."""
    import sqlalchemy as sa

    from msgine.server.audit import verify as verify_chain
    from msgine.server.storage import audit_log

    head = _anchor_of(anchor, anchor_seq, anchor_hash)
    with runtime() as rt:
        security_logging(rt.settings)

        def check(conn: sa.Connection) -> tuple[Any, int]:
            count = conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one()
            return verify_chain(conn, rt.vault, head), int(count)

        problem, count = rt.db.read(check)
    if as_json:
        broken = (
            None
            if problem is None
            else {"seq": problem.seq, "id": problem.id, "reason": problem.reason}
        )
        emit_json({"ok": problem is None, "entries": count, "brokenAt": broken})
    if problem is None:
        if not as_json:
            against = f", up to the published head at seq {head.seq}" if head else ""
            typer.echo(f"ok: {count} entries{against}")
        return
    from msgine.server.logging import security_event

    security_event(
        "audit_chain_broken", seq=problem.seq, entry_id=problem.id, reason=problem.reason
    )
    entry = problem.id or "(missing)"
    typer.echo(
        f"error: audit log broken at seq {problem.seq}, id {entry}: {problem.reason}", err=True
    )
    raise typer.Exit(1)


def _anchor_of(path: Path | None, seq: int | None, digest: str | None) -> Any:
    """The published head given on the command line, or None; a usage error exits 2."""
    from msgine.server.audit import AnchorError, ChainAnchor, load_anchor

    if path is not None and (seq is not None or digest is not None):
        _usage("give --anchor, or --anchor-seq with --anchor-hash, not both")
    if path is not None:
        try:
            return load_anchor(path)
        except AnchorError as exc:
            _usage(f"--anchor: {exc}")
    if (seq is None) != (digest is None):
        _usage("--anchor-seq and --anchor-hash go together")
    if seq is None or digest is None:
        return None
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        _usage("--anchor-hash: 64 lower-case hex characters")
    return ChainAnchor(seq, digest)


def _usage(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@audit.command("list")
def list_(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """The newest entries of every account and of the gateway itself, newest first."""
    import sqlalchemy as sa

    from msgine.server.audit import view
    from msgine.server.storage import audit_log

    with runtime() as rt:
        rows = rt.db.read(
            lambda conn: [
                view(r)
                for r in conn.execute(
                    sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
                ).mappings()
            ]
        )
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        typer.echo(
            f"{r['seq']:>6}  {r['occurredAt']}  {r['actor']}  {r['action']}  "
            f"{r['target'] or '-'}  {r['outcome']}"
        )
