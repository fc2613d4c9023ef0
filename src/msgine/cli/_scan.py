"""``msgine scan`` commands."""

from __future__ import annotations
