"""Routes: the account's webhook signing secret (scope ``webhooks:manage``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from msgine.server import webhooks as service
from msgine.server.api._deps import actor_of, require, runtime_of
from msgine.server.api._openapi import answers
from msgine.server.api._schemas import SecretView
from msgine.server.api.routes.webhooks import RotateSecret, secret_view
from msgine.server.keys import Principal

router = APIRouter(tags=["account"])
manage = require("webhooks:manage")


@router.post(
    "/account/webhook-secret", operation_id="rotate_account_secret", **answers(SecretView, 413)
)
async def rotate_webhook_secret(
    request: Request,
    principal: Annotated[Principal, Depends(manage)],
    body: RotateSecret | None = None,
) -> dict[str, Any]:
    """The secret that signs per-message ``callbackUrl`` deliveries of the key's mode (live
    and test each have one), shown once.

    The first call creates it; later calls replace it, and the previous one keeps signing
    alongside the new one for ``graceHours``.
    """
    runtime = runtime_of(request)
    grace = timedelta(hours=(body or RotateSecret()).graceHours)
    actor, now = actor_of(request, principal), runtime.now()
    new = await runtime.db.awrite(
        lambda conn: service.rotate_account_secret(
            conn,
            runtime.vault,
            actor,
            account_id=principal.account_id,
            grace=grace,
            now=now,
            mode=principal.mode,
        )
    )
    return secret_view(new)
