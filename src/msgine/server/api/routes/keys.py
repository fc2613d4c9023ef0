"""Routes: API keys (scope ``keys:manage``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from msgine.server import keys as key_service
from msgine.server.api._deps import require, runtime_of
from msgine.server.keys import Principal

router = APIRouter(tags=["keys"])
manage = require("keys:manage")


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=200)
    mode: Literal["test", "live"] = "test"
    scopes: list[str] | None = None
    allowedIps: list[str] | None = None  # noqa: N815 - the API's JSON names are camelCase
    expiresInDays: int | None = Field(default=None, ge=1, le=3650)  # noqa: N815
    rateLimit: str | None = Field(default=None, max_length=200)  # noqa: N815


class RotateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    graceHours: float = Field(default=24, ge=0, le=key_service.MAX_GRACE_HOURS)  # noqa: N815


def created_view(new: key_service.NewKey, now: Any) -> dict[str, Any]:
    return {**key_service.public_view(new.record, now), "key": new.secret}


@router.post("/keys", status_code=201)
async def create_key(
    body: CreateKey, request: Request, principal: Principal = Depends(manage)
) -> dict[str, Any]:
    """Create a key in the caller's account. The key is in this response and nowhere else."""
    runtime = runtime_of(request)
    now = runtime.now()
    if body.mode == "live" and principal.mode == "test":
        from msgine.server.errors import Forbidden

        raise Forbidden("A test key cannot create live keys.")
    new = await runtime.db.awrite(
        lambda conn: key_service.create_key(
            conn,
            runtime.vault,
            account_id=principal.account_id,
            now=now,
            name=body.name,
            mode=body.mode,
            scopes=body.scopes,
            allowed_ips=body.allowedIps,
            expires_at=now + timedelta(days=body.expiresInDays) if body.expiresInDays else None,
            rate_limit=body.rateLimit,
            created_by=principal.key_id,
        )
    )
    return created_view(new, now)


@router.get("/keys")
async def list_keys(request: Request, principal: Principal = Depends(manage)) -> dict[str, Any]:
    runtime = runtime_of(request)
    now = runtime.now()
    rows = await runtime.db.aread(lambda conn: key_service.list_keys(conn, principal.account_id))
    return {"keys": [key_service.public_view(r, now) for r in rows]}


@router.post("/keys/{key_id}/rotate", status_code=201)
async def rotate_key(
    key_id: str, request: Request, body: RotateKey | None = None, principal: Principal = Depends(manage)
) -> dict[str, Any]:
    runtime = runtime_of(request)
    now = runtime.now()
    grace = timedelta(hours=(body or RotateKey()).graceHours)
    new = await runtime.db.awrite(
        lambda conn: key_service.rotate_key(
            conn,
            runtime.vault,
            key_id,
            now=now,
            grace=grace,
            account_id=principal.account_id,
            created_by=principal.key_id,
        )
    )
    return created_view(new, now)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(
    key_id: str, request: Request, principal: Principal = Depends(manage)
) -> dict[str, Any]:
    runtime = runtime_of(request)
    now = runtime.now()
    record = await runtime.db.awrite(
        lambda conn: key_service.revoke_key(conn, key_id, now=now, account_id=principal.account_id)
    )
    return key_service.public_view(record, now)
