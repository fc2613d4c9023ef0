"""Webhook delivery: claims due deliveries, signs and sends them, records each attempt."""

from __future__ import annotations

from typing import Any

from msgine.server.runtime import Runtime


def background_tasks(runtime: Runtime) -> list[Any]:
    """The dispatcher loop(s) a worker process runs."""
    return []
