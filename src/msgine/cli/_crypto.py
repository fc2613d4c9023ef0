"""``msgine crypto`` commands."""

from __future__ import annotations
