"""Fixtures for the API's rate limits: an in-process app with chosen settings, and a recorder
of security events."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from support import REDIS_URL, FakeClock, make_settings

Events = list[tuple[str, dict[str, Any]]]


@dataclass
class LimitedApi:
    runtime: Any
    app: Any
    client: httpx.AsyncClient
    account_id: str
    key: str = field(repr=False)

    def new_key(self, account_id: str | None = None, **kwargs: Any) -> str:
        from msgine.server.keys import create_key

        now = self.runtime.now()
        new = self.runtime.db.write(
            lambda conn: create_key(
                conn,
                self.runtime.vault,
                account_id=account_id or self.account_id,
                now=now,
                **kwargs,
            )
        )
        return str(new.secret)

    def new_account(self, name: str = "other") -> tuple[str, str]:
        from msgine.server.accounts import create_account

        account_id = self.runtime.db.write(
            lambda conn: create_account(conn, name, self.runtime.now())
        )
        return account_id, self.new_key(account_id)

    def set_policy(self, account_id: str | None = None, **changes: Any) -> None:
        from msgine.server.accounts import update_policy

        self.runtime.db.write(
            lambda conn: update_policy(conn, account_id or self.account_id, changes)
        )

    def set_key_limit(self, key: str, rate_limit: str | None) -> None:
        import sqlalchemy as sa

        from msgine.server.storage._tables import api_keys

        digest = self.runtime.vault.key_hash(key)
        self.runtime.db.write(
            lambda conn: conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.key_hash == digest)
                .values(rate_limit=rate_limit)
            )
        )

    async def send(
        self, key: str | None = None, *, ip: str | None = None, **body: Any
    ) -> httpx.Response:
        body.setdefault("to", "+256701521269")
        body.setdefault("message", "Hello from MsGine")
        return await self.client.post(
            "/api/v1/messages/sms", json=body, headers=self.headers(key, ip=ip)
        )

    def headers(self, key: str | None = None, *, ip: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if ip is not None:
            headers["X-Forwarded-For"] = ip
        return headers


OpenApi = Callable[..., contextlib.AbstractAsyncContextManager[LimitedApi]]


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
        from msgine.server.api import create_app
        from msgine.server.runtime import Runtime, ensure_default_account

        folder = tmp_path / uuid.uuid4().hex[:8]
        settings = make_settings(folder, database_url, **overrides)
        runtime = Runtime.open(settings, clock=clock)
        try:
            first = ensure_default_account(runtime)
            assert first is not None
            app = create_app(runtime)
            transport = httpx.ASGITransport(app=app)
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
                app.router.lifespan_context(app),
            ):
                yield LimitedApi(runtime, app, client, first.record["account_id"], first.secret)
        finally:
            runtime.close()

    return open_


__all__ = ["REDIS_URL", "Events", "LimitedApi", "OpenApi"]
