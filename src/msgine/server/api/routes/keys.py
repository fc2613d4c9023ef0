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
from msgine.server.api._openapi import answers
from msgine.server.api._schemas import (
    CompromisedKeyView,
    KeyList,
    KeyUsageReport,
    KeyView,
    NewKeyView,
)
from msgine.server.api._text import PlainText
from msgine.server.keys import Principal

router = APIRouter(tags=["keys"])
manage = require("keys:manage")


class CreateKey(BaseModel):
    """A new key; what is left out is the calling key's own (mode, scopes, addresses, expiry,
    limit), and nothing may exceed it."""

    # Strict: a boolean or a string is not a number of days (nor a list of scopes).
    model_config = ConfigDict(extra="forbid", strict=True)
    name: PlainText = Field(default="", max_length=200)
    mode: Literal["test", "live"] | None = None
    scopes: list[str] | None = None
    allowedIps: list[str] | None = None
    expiresInDays: StrictInt | None = Field(default=None, ge=1, le=3650)
    rateLimit: str | None = Field(default=None, max_length=200)


class RotateKey(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    graceHours: StrictFloat = Field(default=24, ge=0, le=key_service.MAX_GRACE_HOURS)


def created_view(new: key_service.NewKey, now: datetime) -> dict[str, Any]:
    return {**key_service.public_view(new.record, now), "key": new.secret}


async def _reissuable(request: Request, principal: Principal, key_id: str) -> None:
    """The key exists in the caller's account and mode, and is no stronger than the caller
    (its replacement's secret goes to the caller). A key's settings never change, so checking
    before the write that rotates it is enough."""
    runtime = runtime_of(request)
    ceiling = runtime.settings.rate_limit_per_key

    def check(conn: Any) -> None:
        target = key_service.get_key(conn, key_id, principal.account_id, principal.mode)
        key_service.check_reissue(conn, principal.key_id, target, ceiling)

    await runtime.db.aread(check)


@router.post("/keys", operation_id="create_key", **answers(NewKeyView, 413, status=201))
async def create_key(
    body: CreateKey, request: Request, principal: Principal = Depends(manage)
) -> dict[str, Any]:
    """Create a key in the caller's account. The key is in this response and nowhere else."""
    runtime = runtime_of(request)
    now = runtime.now()
    actor = actor_of(request, principal)
    wanted = key_service.KeyRequest(
        mode=body.mode,
        scopes=body.scopes,
        allowed_ips=body.allowedIps,
        expires_at=now + timedelta(days=body.expiresInDays) if body.expiresInDays else None,
        rate_limit=body.rateLimit,
    )
    new = await runtime.db.awrite(
        lambda conn: key_service.create_key_by(
            conn,
            runtime.vault,
            principal.key_id,
            wanted,
            now=now,
            name=body.name,
            key_ceiling=runtime.settings.rate_limit_per_key,
            actor=actor,
        )
    )
    return created_view(new, now)


@router.get("/keys", operation_id="list_keys", **answers(KeyList))
async def list_keys(request: Request, principal: Principal = Depends(manage)) -> dict[str, Any]:
    runtime = runtime_of(request)
    now = runtime.now()
    rows = await runtime.db.aread(
        lambda conn: key_service.list_keys(conn, principal.account_id, principal.mode)
    )
    return {"keys": [key_service.public_view(r, now) for r in rows]}


@router.post(
    "/keys/{key_id}/rotate", operation_id="rotate_key", **answers(NewKeyView, 404, 413, status=201)
)
async def rotate_key(
    key_id: str,
    request: Request,
    body: RotateKey | None = None,
    principal: Principal = Depends(manage),
) -> dict[str, Any]:
    runtime = runtime_of(request)
    now = runtime.now()
    await _reissuable(request, principal, key_id)
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
            mode=principal.mode,
            created_by=principal.key_id,
            actor=actor,
        )
    )
    return created_view(new, now)


@router.post("/keys/{key_id}/revoke", operation_id="revoke_key", **answers(KeyView, 404))
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
            mode=principal.mode,
            vault=runtime.vault,
            actor=actor,
        )
    )
    return key_service.public_view(row, now)


@router.post(
    "/keys/{key_id}/compromise",
    operation_id="compromise_key",
    **answers(CompromisedKeyView, 404, status=201),
)
async def compromise_key(
    key_id: str, request: Request, principal: Principal = Depends(manage)
) -> dict[str, Any]:
    """Revoke now, issue a replacement (its key is in this response only), report usage.

    The body is the replacement key (like ``rotate``) plus ``compromisedKeyId`` and ``report``.
    """
    runtime = runtime_of(request)
    now = runtime.now()
    await _reissuable(request, principal, key_id)
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


@router.get("/keys/{key_id}/usage", operation_id="key_usage", **answers(KeyUsageReport, 404))
async def key_usage(
    key_id: str, request: Request, principal: Principal = Depends(manage)
) -> dict[str, Any]:
    """The key's usage report (the compromise report's shape), read now: after a compromise,
    ``refusedAfterRevocation`` shows whether someone still tries the revoked key."""
    runtime = runtime_of(request)
    key = await runtime.db.aread(
        lambda conn: key_service.get_key(conn, key_id, principal.account_id, principal.mode)
    )
    recorder = getattr(request.app.state, "usage_recorder", None)
    if recorder is not None:  # this process's counts into the report
        await recorder.flush()
    return await runtime.db.aread(lambda conn: incident.usage_report(conn, key))
