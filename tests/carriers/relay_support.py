"""Helpers of the tests that run a gateway subprocess and configure it from the test process."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_gateway_runtime(root: Path) -> Any:
    """The runtime of the gateway whose data lives under ``root/gw-data``, to change its
    configuration as the CLI changes it (the service functions) from the test process: one CLI
    run per step would cost seconds each on a loaded machine."""
    from msgine.server.config import Settings
    from msgine.server.runtime import Runtime

    settings = Settings(_env_file=None, data_dir=root / "gw-data")  # type: ignore[call-arg]
    return Runtime.open(settings, create=False)


def live_key(runtime: Any) -> str:
    """A new live API key of the first account."""
    from msgine.server.accounts import list_accounts
    from msgine.server.keys import create_key

    def create(conn: Any) -> str:
        account = list_accounts(conn)[0]["id"]
        made = create_key(conn, runtime.vault, account_id=account, now=runtime.now(), mode="live")
        return str(made.secret)

    return str(runtime.db.write(create))
