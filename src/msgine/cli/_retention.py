"""``msgine retention`` commands."""

from __future__ import annotations
