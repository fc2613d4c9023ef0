"""Request dependencies: the runtime, the caller's address, and key authentication."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from msgine.server.audit import Actor
from msgine.server.errors import InvalidRequest
from msgine.server.keys import CREDENTIALS, Principal, key_digest, principal_of
from msgine.server.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def presented_key(request: Request) -> str | None:
    """The key from ``X-Api-Key``, ``Authorization: Bearer KEY`` or ``Authorization: KEY``.

    A request must not leave it to the server to pick one credential among several (a proxy
    and the application could pick differently): two ``X-Api-Key`` or two ``Authorization``
    headers, or an ``X-Api-Key`` and an ``Authorization`` naming a different key, are a 400.
    """
    keys = request.headers.getlist("x-api-key")
    auths = request.headers.getlist("authorization")
    if len(keys) > 1 or len(auths) > 1:
        raise _conflicting()
    from_header = keys[0].strip() if keys and keys[0].strip() else None
    from_auth = _from_authorization(auths[0]) if auths else None
    # Compared in constant time: both values are secrets, and one of them may be the real key.
    if (
        from_header is not None
        and from_auth is not None
        and not hmac.compare_digest(from_header.encode(), from_auth.encode())
    ):
        raise _conflicting()
    return from_header or from_auth


def _from_authorization(value: str) -> str | None:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip() or None
    return value.strip() or None


def _conflicting() -> InvalidRequest:
    return InvalidRequest(
        "Send one API key, in one header: X-Api-Key or Authorization.",
        details={"reason": "conflicting_credentials"},
    )


_CLIENT_IP = "msgine.client_ip"


def client_ip(request: Request) -> str | None:
    """The caller's address (behind trusted proxies, the app's resolver decides); worked out
    once per request, as several hooks ask for it."""
    scope = request.scope
    if _CLIENT_IP in scope:
        return scope[_CLIENT_IP]  # type: ignore[no-any-return]
    resolver: Callable[[Request], str | None] | None = getattr(
        request.app.state, "client_ip_resolver", None
    )
    if resolver is not None:
        address = resolver(request)
    else:
        address = request.client.host if request.client else None
    scope[_CLIENT_IP] = address
    return address


AuthHook = Callable[[Request, Principal | None, Exception | None], Awaitable[None]]


async def authenticate_request(request: Request, scope: str) -> Principal:
    """The caller's principal, holding ``scope``; runs the app's authentication hooks."""
    runtime = runtime_of(request)
    state = request.app.state
    pre: list[Callable[[Request], Awaitable[None]]] = getattr(state, "pre_auth_hooks", [])
    hooks: list[AuthHook] = getattr(state, "auth_hooks", [])
    for pre_hook in pre:
        await pre_hook(request)
    key = presented_key(request)
    ip = client_ip(request)
    now: datetime = runtime.now()
    principal: Principal | None = None
    try:
        digest = key_digest(runtime.vault, key)
        credentials = await runtime.db.alookup(CREDENTIALS, digest)
        principal = principal_of(credentials, digest, ip, now)
        principal.require(scope)
    except Exception as exc:
        for hook in hooks:
            await hook(request, principal, exc)
        raise
    request.state.principal = principal
    for hook in hooks:
        await hook(request, principal, None)
    return principal


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks one scope."""

    async def dependency(request: Request) -> Principal:
        return await authenticate_request(request, scope)

    return dependency


Model = TypeVar("Model", bound=BaseModel)


async def json_body(request: Request, model: type[Model]) -> Model:
    """The request's JSON body as ``model``, for routes that parse their own body.

    pydantic-core parses and validates straight from the bytes. Errors take the same path as
    FastAPI's own (400 ``invalid_request`` naming each field), and carry no input values.
    """
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.partition(";")[0].strip().lower()
    if not (media == "application/json" or media.endswith("+json")):
        raise InvalidRequest(
            "The body must be JSON (Content-Type: application/json).",
            details={"field": "Content-Type"},
        )
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in errors]
        ) from None


def actor_of(request: Request, principal: Principal) -> Actor:
    """The audit actor for an API call: the key id, the caller's address and the request id."""
    return Actor(
        name=principal.key_id,
        source_ip=client_ip(request),
        request_id=str(getattr(request.state, "request_id", "") or "") or None,
    )
