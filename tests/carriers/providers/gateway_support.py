"""Driving the in-process gateway against a provider test server: carriers of an HTTP kind
added through the same service function as ``msgine carriers add``, callbacks the test server
built posted to the gateway's route, and the reads the assertions need."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from providers.provider_server import Callback

#: The gateway's public address in these tests (``MSGINE_PUBLIC_URL``): the URL Twilio signs.
PUBLIC_URL = "https://sms.example.com"
#: The end-to-end tests run on SQLite; those marked with this run on PostgreSQL too (the
#: storage they touch is the framework's, tested on both by its own suites).
BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def database_url_param(request: pytest.FixtureRequest) -> str | None:
    """The ``database_url`` of a module that runs on SQLite unless marked ``BOTH_DATABASES``."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


def add_http_carrier(
    operator: Any,
    name: str,
    kind: str,
    options: dict[str, Any],
    credentials: dict[str, Any],
    **settings: Any,
) -> str:
    """Add a carrier as ``msgine carriers add`` does; returns its callback base URL."""
    from msgine.server.carriers import callback_url
    from msgine.server.carriers._config import add_carrier

    runtime = operator.runtime
    view = runtime.db.write(
        lambda conn: add_carrier(
            conn,
            runtime.vault,
            name=name,
            kind=kind,
            options=options,
            credentials=credentials,
            now=runtime.now(),
            actor=operator.actor,
            **settings,
        )
    )
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
