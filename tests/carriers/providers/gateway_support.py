"""Driving the in-process gateway against a provider test server: carriers of an HTTP kind
added through the same service function as ``msgine carriers add``, callbacks the test server
built posted to the gateway's route, and the reads the assertions need."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from http_support import add_http_carrier
from providers.provider_server import Callback

from support import make_settings

#: The gateway's public address in these tests (``MSGINE_PUBLIC_URL``): the URL Twilio signs.
PUBLIC_URL = "https://sms.example.com"
#: The end-to-end tests run on SQLite; those marked with this run on PostgreSQL too (the
#: storage they touch is the framework's, tested on both by its own suites).
BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Imported by a module that runs on SQLite unless a test is marked ``BOTH_DATABASES``."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Any:
    """The gateway's settings, with its public URL."""
    return make_settings(tmp_path, database_url, public_url=PUBLIC_URL)


@contextlib.asynccontextmanager
async def serving(api: Any) -> AsyncIterator[None]:
    """The body runs with the worker's carriers started as it needs them; stopped after."""
    try:
        yield
    finally:
        await api.worker.fleet.stop_all()


def add_carrier_at(
    operator: Any,
    name: str,
    kind: str,
    options: dict[str, Any],
    credentials: dict[str, Any],
    **settings: Any,
) -> str:
    """Add a carrier as ``msgine carriers add`` does; returns its callback base URL."""
    from msgine.server.carriers import callback_url

    view = add_http_carrier(operator, name, kind, options, credentials, **settings)
    return callback_url(PUBLIC_URL, name, view["callbackToken"])


async def deliver(api: Any, callback: Callback) -> httpx.Response:
    """Post a provider's callback to the in-process gateway (its public URL's path)."""
    assert callback.url.startswith(PUBLIC_URL), callback.url
    path = callback.url.removeprefix(PUBLIC_URL)
    response: httpx.Response = await api.client.post(
        path, data=callback.form, headers=callback.headers
    )
    return response


def live_key(api: Any) -> str:
    return str(api.new_key(mode="live", name="prod"))


def count(api: Any, table: sa.Table, *where: Any) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(*where)
    return int(api.runtime.db.read(lambda c: c.execute(query).scalar_one()))
