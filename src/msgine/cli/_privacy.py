"""``msgine privacy`` commands."""

from __future__ import annotations
