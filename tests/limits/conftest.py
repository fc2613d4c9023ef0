"""Fixtures for the API's rate limits: an in-process app with chosen settings, a Redis prefix
of the test's own, and a recorder of security events."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from limits_support import Events, LimitedApi, OpenApi

from support import FakeClock, make_settings, serve_in_process


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Events:
    """Security events from the API's rate limits, as (event, fields)."""
    from msgine.server.api import _limits

    recorded: Events = []
    monkeypatch.setattr(
        _limits, "security_event", lambda event, **fields: recorded.append((event, fields))
    )
    return recorded


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"msgine-t-{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def open_api(tmp_path: Path, clock: FakeClock) -> OpenApi:
    """`async with open_api(database_url=None, **settings) as api:` an app with those settings
    (e.g. redis_url=REDIS_URL, trusted_proxies=...), its client and a first key."""

    @contextlib.asynccontextmanager
    async def open_(database_url: str | None = None, **overrides: Any) -> AsyncIterator[LimitedApi]:
        from msgine.server.runtime import Runtime

        folder = tmp_path / uuid.uuid4().hex[:8]
        settings = make_settings(folder, database_url, **overrides)
        runtime = Runtime.open(settings, clock=clock)
        try:
            async with serve_in_process(runtime) as (app, client, first):
                yield LimitedApi(runtime, app, client, first.record["account_id"], first.secret)
        finally:
            runtime.close()

    return open_
