"""The ``msgine`` command. Each domain's commands live in their own module."""

from __future__ import annotations

from msgine.cli._app import app, main
from msgine.cli import _accounts, _keys, _serve  # noqa: F401  (registers commands)

__all__ = ["app", "main"]
