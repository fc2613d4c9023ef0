"""The ``msgine`` command. Each domain's commands live in their own module."""

from __future__ import annotations

from msgine.cli import (  # noqa: F401  (importing registers the commands)
    _accounts,
    _audit,
    _carriers,
    _crypto,
    _keys,
    _keyusage,
    _privacy,
    _retention,
    _scan,
    _serve,
    _users,
    _webhooks,
)
from msgine.cli._app import app, main

__all__ = ["app", "main"]
