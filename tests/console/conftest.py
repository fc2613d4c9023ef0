"""Console fixtures: a signed-in owner on the in-process API (``api`` fixture, both databases)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from console_support import Console, User, make_user, signed_in


@pytest.fixture
def owner(api: Any) -> User:
    return make_user(api.runtime, api.account_id)


@pytest.fixture
async def console(api: Any, owner: User) -> AsyncIterator[Console]:
    """An owner, signed in (password and TOTP) on a client of its own."""
    async for signed in signed_in(api, owner):
        yield signed
