"""Retention: purging personal data older than each account's retention period."""

from __future__ import annotations

from typing import Any

from msgine.server.runtime import Runtime


def background_tasks(runtime: Runtime) -> list[Any]:
    """The periodic retention loop a worker process runs."""
    return []
