"""Console fixtures: a signed-in owner on the in-process API (``api`` fixture, both databases)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from console_support import User, client_for, make_user, sign_in


@dataclass
class Console:
    """A signed-in browser-like client: ``client`` keeps the session cookie, ``csrf`` its token."""

    api: Any
    user: User
    client: httpx.AsyncClient
    csrf: str

    async def post(self, path: str, **data: str) -> httpx.Response:
        return await self.client.post(path, data={"csrf_token": self.csrf, **data})


async def signed_in(api: Any, user: User) -> AsyncIterator[Console]:
    async with client_for(api) as client:
        csrf = await sign_in(client, user)
        yield Console(api, user, client, csrf)


@pytest.fixture
def owner(api: Any) -> User:
    return make_user(api.runtime, api.account_id)


@pytest.fixture
async def console(api: Any, owner: User) -> AsyncIterator[Console]:
    """An owner, signed in (password and TOTP) on a client of its own."""
    async for signed in signed_in(api, owner):
        yield signed
