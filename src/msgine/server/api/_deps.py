"""Request dependencies: the runtime, the caller's address, and key authentication."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from fastapi import Request

from msgine.server.audit import Actor
from msgine.server.keys import Principal, authenticate
from msgine.server.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def presented_key(request: Request) -> str | None:
    """The key from ``X-Api-Key``, ``Authorization: Bearer KEY`` or ``Authorization: KEY``."""
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization")
    if not auth:
        return None
    scheme, _, rest = auth.strip().partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip() or None
    return auth.strip()


def client_ip(request: Request) -> str | None:
    resolver: Callable[[Request], str | None] | None = getattr(
        request.app.state, "client_ip_resolver", None
    )
    if resolver is not None:
        return resolver(request)
    return request.client.host if request.client else None


AuthHook = Callable[[Request, Principal | None, Exception | None], Awaitable[None]]


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks one scope."""

    async def dependency(request: Request) -> Principal:
        runtime = runtime_of(request)
        hooks: list[AuthHook] = getattr(request.app.state, "auth_hooks", [])
        pre: list[Callable[[Request], Awaitable[None]]] = getattr(
            request.app.state, "pre_auth_hooks", []
        )
        for pre_hook in pre:
            await pre_hook(request)
        key = presented_key(request)
        ip = client_ip(request)
        now: datetime = runtime.now()
        principal: Principal | None = None
        try:
            principal = await runtime.db.aread(
                lambda conn: authenticate(conn, runtime.vault, key, ip, now), point=True
            )
            principal.require(scope)
        except Exception as exc:
            for hook in hooks:
                await hook(request, principal, exc)
            raise
        request.state.principal = principal
        for hook in hooks:
            await hook(request, principal, None)
        return principal

    return dependency


def actor_of(request: Request, principal: Principal) -> Actor:
    """The audit actor for an API call: the key id, the caller's address and the request id."""
    return Actor(
        name=principal.key_id,
        source_ip=client_ip(request),
        request_id=str(getattr(request.state, "request_id", "") or "") or None,
    )
