"""Routes: API keys (scope ``keys:manage``). Every change is audited with the calling key as the
actor (see :mod:`msgine.server.keys`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from msgine.server import incident
from msgine.server import keys as key_service
from msgine.server.api._deps import actor_of, require, runtime_of
from msgine.server.api._text import PlainText
from msgine.server.errors import Forbidden
from msgine.server.keys import Principal

router = APIRouter(tags=["keys"])
manage = require("keys:manage")


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: PlainText = Field(default="", max_length=200)
    mode: Literal["test", "live"] = "test"
    scopes: list[str] | None = None
    allowedIps: list[str] | None = None
    expiresInDays: StrictInt | None = Field(default=None, ge=1, le=3650)
    rateLimit: str | None = Field(default=None, max_length=200)


class RotateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    graceHours: StrictFloat = Field(default=24, ge=0, le=key_service.MAX_GRACE_HOURS)


def created_view(new: key_service.NewKey, now: datetime) -> dict[str, Any]:
    return {**key_service.public_view(new.record, now), "key": new.secret}


def _no_live_from_test(principal: Principal, mode: str) -> None:
    if mode == "live" and principal.mode == "test":
        raise Forbidden("A test key cannot create live keys.")


async def _own_key(request: Request, principal: Principal, key_id: str) -> dict[str, Any]:
    runtime = runtime_of(request)
    return await runtime.db.aread(
        lambda conn: key_service.get_key(conn, key_id, principal.account_id)
    )


@router.post("/keys", status_code=201)
async def create_key(
    body: CreateKey, request: Request, principal: Principal = Depends(manage)
) -> dict[str, Any]:
    """Create a key in the caller's account. The key is in this response and nowhere else."""
    runtime = runtime_of(request)
    now = runtime.now()
    _no_live_from_test(principal, body.mode)
    actor = actor_of(request, principal)
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
            actor=actor,
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
    key_id: str,
    request: Request,
    body: RotateKey | None = None,
    principal: Principal = Depends(manage),
) -> dict[str, Any]:
    runtime = runtime_of(request)
    now = runtime.now()
    _no_live_from_test(principal, (await _own_key(request, principal, key_id))["mode"])
    grace = timedelta(hours=(body or RotateKey()).graceHours)
    actor = actor_of(request, principal)
    new = await runtime.db.awrite(
        lambda conn: key_service.rotate_key(
            conn,
            runtime.vault,
            key_id,
            now=now,
            grace=grace,
            account_id=principal.account_id,
            created_by=principal.key_id,
            actor=actor,
        )
    )
    return created_view(new, now)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(
    key_id: str, request: Request, principal: Principal = Depends(manage)
) -> dict[str, Any]:
    runtime = runtime_of(request)
    now = runtime.now()
    actor = actor_of(request, principal)
    row = await runtime.db.awrite(
        lambda conn: key_service.revoke_key(
            conn,
            key_id,
            now=now,
            account_id=principal.account_id,
            vault=runtime.vault,
            actor=actor,
        )
    )
    return key_service.public_view(row, now)


@router.post("/keys/{key_id}/compromise", status_code=201)
async def compromise_key(
    key_id: str, request: Request, principal: Principal = Depends(manage)
) -> dict[str, Any]:
    """Revoke now, issue a replacement (its key is in this response only), report usage.

    The body is the replacement key (like ``rotate``) plus ``compromisedKeyId`` and ``report``.
    """
    runtime = runtime_of(request)
    now = runtime.now()
    _no_live_from_test(principal, (await _own_key(request, principal, key_id))["mode"])
    recorder = getattr(request.app.state, "usage_recorder", None)
    if recorder is not None:  # this process's counts into the report
        await recorder.flush()
    result = await incident.acompromise(
        runtime.db,
        runtime.vault,
        key_id,
        now=now,
        actor=actor_of(request, principal),
        account_id=principal.account_id,
    )
    return {
        **created_view(result.replacement, now),
        "compromisedKeyId": key_id,
        "report": result.report,
    }
