"""Helpers for the rate-limit tests: an in-process app with chosen settings (`LimitedApi`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

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
