"""FastAPI integration: a dependency that yields the verified event.

    from fastapi import Depends, FastAPI
    from msgine.webhooks.fastapi import webhook_dependency

    receive = webhook_dependency(secret=from_env(), dedupe=MemoryDedupeStore())

    @app.post("/webhooks/msgine")
    def msgine_webhook(event: dict = Depends(receive)) -> dict:
        ...

Bad signature: 401; address outside the allow-list: 403; duplicate: 200 ``{"status":
"duplicate"}`` without calling the endpoint. If the endpoint raises, the dedupe claim is released.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ._dedupe import DedupeStore, Deduplicator
from ._ipallow import IpAllowList
from ._receiver import WebhookReceiver
from ._secrets import SecretSpec

__all__ = ["webhook_dependency"]


def webhook_dependency(
    secret: SecretSpec,
    *,
    tolerance: int = 300,
    dedupe: Deduplicator | DedupeStore | None = None,
    allow_list: IpAllowList | None = None,
    allow_legacy: bool = False,
) -> Callable[[Request], AsyncIterator[dict[str, Any]]]:
    receiver = WebhookReceiver(
        secret, tolerance=tolerance, dedupe=dedupe, allow_list=allow_list, allow_legacy=allow_legacy
    )

    async def verified_webhook(request: Request) -> AsyncIterator[dict[str, Any]]:
        body = await request.body()
        peer = request.client.host if request.client else None
        # Secret loading and dedupe stores may do network I/O: keep it off the event loop.
        decision = await run_in_threadpool(
            receiver.check, body, request.headers, peer, request.headers.get("x-forwarded-for")
        )
        if decision.event is None:
            raise HTTPException(decision.status, detail=decision.body())
        try:
            yield decision.event
        except BaseException:
            await run_in_threadpool(receiver.failed, decision)
            raise
        await run_in_threadpool(receiver.succeeded, decision)

    return verified_webhook
