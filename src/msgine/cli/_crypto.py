"""``msgine crypto rotate-master-key``: a new master key, data keys re-wrapped, no downtime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from msgine.cli._app import app, cli_actor, emit_json, runtime
from msgine.cli._confirm import YesOption, confirm
from msgine.cli._output import JsonOption, progress, say

crypto = typer.Typer(help="Encryption keys for data at rest.", no_args_is_help=True)
app.add_typer(crypto, name="crypto")


@crypto.command("rotate-master-key")
def rotate_master_key(
    new_key_file: Annotated[
        Path | None,
        typer.Option(help="Where to write the new key ring when MSGINE_MASTER_KEY is used"),
    ] = None,
    retire_old: Annotated[
        bool,
        typer.Option(
            "--retire-old", help="Remove the old keys from the file afterwards (asks first)"
        ),
    ] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Put a new master key first in the key file and re-wrap every data key with it."""
    from msgine.cli._audit import security_logging
    from msgine.server.crypto import key_file_for_rotation
    from msgine.server.crypto import rotate_master_key as rotate

    with runtime() as rt:
        target = key_file_for_rotation(rt.settings, new_key_file)  # refuse before touching
        if retire_old:
            confirm(
                [
                    f"This rotates the master key and then removes every older key from {target}.",
                    "Any process still running on an old key alone, and any backup of the "
                    "database taken before now, can then only be opened with a copy of the old "
                    "key kept elsewhere. Restart every gateway process on the new file first.",
                ],
                question="Rotate and retire the old master keys?",
                yes=yes,
            )
        security_logging(rt.settings)
        with progress("re-wrapping data keys"):
            result = rotate(
                rt.settings,
                rt.db,
                rt.vault,
                now=rt.now(),
                actor=cli_actor(),
                new_key_file=new_key_file,
                retire_old=retire_old,
            )
    if as_json:
        emit_json(
            {
                "newKeyId": result.new_key_id,
                "oldKeyIds": list(result.old_key_ids),
                "keyFile": str(result.key_file),
                "dataKeys": result.data_keys,
                "retiredOld": result.retired_old,
            }
        )
    else:
        typer.echo(
            f"master key {result.new_key_id} now wraps {result.data_keys} data keys "
            f"(key file {result.key_file})"
        )
    if result.from_environment:
        say(
            f"next: set MSGINE_MASTER_KEY_FILE={result.key_file} and unset MSGINE_MASTER_KEY "
            "for every gateway process, then restart them one by one"
        )
    elif not retire_old:
        say(
            "the old key stays in the file; once every process has restarted, run again with "
            "--retire-old or remove its line"
        )
