"""Compliance test helpers: consents, inbound replies through the simulator, raw table reads."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

PHONE = "+256701521269"  # Africa/Kampala, UTC+3 all year
OTHER = "+256701521270"


class ComplianceApi:
    """Thin calls on the compliance API of an ``api`` fixture."""

    def __init__(self, api: Any) -> None:
        self.api = api

    async def consent(
        self, phone: str = PHONE, purpose: str = "marketing", **body: Any
    ) -> httpx.Response:
        body = {"purpose": purpose, "source": "signup form", **body}
        return await self.api.client.put(
            f"/api/v1/consents/{phone}", json=body, headers=self.api.headers()
        )

    async def inbound(self, text: str, phone: str = PHONE, **body: Any) -> dict[str, Any]:
        response = await self.api.client.post(
            "/api/v1/simulator/inbound",
            json={"from": phone, "message": text, **body},
            headers=self.api.headers(),
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def message(self, message_id: str) -> dict[str, Any]:
        response = await self.api.client.get(
            f"/api/v1/messages/{message_id}", headers=self.api.headers()
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def rows(self, table: sa.Table, *where: Any) -> list[dict[str, Any]]:
        def read(conn: sa.Connection) -> list[dict[str, Any]]:
            return [dict(r) for r in conn.execute(sa.select(table).where(*where)).mappings()]

        rows: list[dict[str, Any]] = self.api.runtime.db.read(read)
        return rows
