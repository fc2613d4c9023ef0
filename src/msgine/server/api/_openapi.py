"""The OpenAPI document: each route's answers, the key styles, links between operations.

Routes declare what they answer with :func:`answers` (the success model and the error statuses
they really return); :func:`install` adds what no single route knows: the three ways to present
a key as security schemes, the package's real version, the Prometheus text of ``/metrics``, and
links from the operations that create a resource to those that use it (schemathesis follows them
in its stateful phase).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from msgine.server.api._schemas import ErrorBody

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "ApiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": "The API key in its own header.",
    },
    "BearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer KEY`.",
    },
    "AuthorizationKey": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Authorization: KEY`, the key with no scheme (MsGine's SDKs send this).",
    },
}
#: Any one of the three is enough.
SECURITY: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]

ERRORS: dict[int, str] = {
    400: "Invalid request: `invalid_request` (each field's problem in `details.errors`), "
    "`invalid_phone_number`, `message_empty`, `message_too_long`, `invalid_sender_id`, "
    "`insecure_callback_url` and other codes named in the docs",
    401: "`unauthorized`: missing, unknown, revoked or expired key",
    403: "`forbidden`: the key lacks the scope, or the caller's address is outside its allow-list",
    404: "`not_found`: no such object in the caller's account",
    409: "`idempotency_conflict`: the idempotency key was used with another body",
    413: "`payload_too_large`: the body exceeds 64 KiB",
    429: "`rate_limit_exceeded`: `Retry-After` and `error.retryAfter` say when to retry",
    503: "`service_unavailable`: the database is unavailable; retry",
}
#: What any authenticated route may answer, whatever it does.
AUTHENTICATED = (400, 401, 403, 429, 503)


def answers(
    model: type[BaseModel] | None,
    *errors: int,
    status: int = 200,
    description: str = "Success",
    authenticated: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for a route: its success status and model, and every error status it
    answers (those of any authenticated route included), each typed as the error body."""
    codes = sorted({*errors, *(AUTHENTICATED if authenticated else ())})
    responses: dict[int | str, dict[str, Any]] = {
        status: {"description": description}
        if model is None
        else {"description": description, "model": model}
    }
    for code in codes:
        responses[code] = {"description": ERRORS[code], "model": ErrorBody}
    kwargs: dict[str, Any] = {
        "status_code": status,
        "response_model": None,
        "responses": responses,
    }
    if authenticated:
        kwargs["openapi_extra"] = {"security": SECURITY}
    return kwargs


#: Request bodies documented by :func:`with_body` rather than parsed by FastAPI.
_BODIES: dict[str, type[BaseModel]] = {}


def with_body(kwargs: dict[str, Any], body: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` (from :func:`answers`) with a required JSON request body: a model, for a
    route that parses its own body (the send path), or a schema."""
    if isinstance(body, dict):
        schema = body
    else:
        _BODIES[body.__name__] = body
        schema = {"$ref": f"#/components/schemas/{body.__name__}"}
    extra = dict(kwargs.get("openapi_extra") or {})
    extra["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return {**kwargs, "openapi_extra": extra}


#: Operations that create something, and the operations its id (or the path it came from)
#: feeds: (operationId, status) -> {link name: (target operationId, {parameter: expression})}.
LINKS: dict[tuple[str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("send_sms", "201"): {
        "GetMessage": ("get_message", {"message_id": "$response.body#/id"}),
    },
    ("create_key", "201"): {
        "RotateKey": ("rotate_key", {"key_id": "$response.body#/id"}),
        "RevokeKey": ("revoke_key", {"key_id": "$response.body#/id"}),
    },
    ("create_webhook", "201"): {
        "GetWebhook": ("get_webhook", {"endpoint_id": "$response.body#/id"}),
        "UpdateWebhook": ("update_webhook", {"endpoint_id": "$response.body#/id"}),
        "RotateWebhookSecret": ("rotate_webhook_secret", {"endpoint_id": "$response.body#/id"}),
        "ListDeliveries": ("list_deliveries", {"endpoint_id": "$response.body#/id"}),
        "DeleteWebhook": ("delete_webhook", {"endpoint_id": "$response.body#/id"}),
    },
    ("put_consent", "200"): {
        "GetConsent": ("get_consent", {"phone": "$request.path.phone"}),
        "WithdrawConsent": ("delete_consent", {"phone": "$request.path.phone"}),
    },
}


def install(app: FastAPI) -> None:
    """Complete the document FastAPI generates (once, on first request for it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema["info"]["version"] = package_version()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            _add_bodies(schema)
            _metrics_as_text(schema)
            _no_422(schema)
            _link(schema)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def package_version() -> str:
    try:
        return importlib.metadata.version("msgine")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree never installed
        return "0+unknown"


def _add_bodies(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, model in _BODIES.items():
        body = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[name] = body


def _metrics_as_text(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/metrics"]["get"]
    operation["responses"]["200"]["content"] = {
        "text/plain; version=0.0.4; charset=utf-8": {"schema": {"type": "string"}}
    }


def _no_422(schema: dict[str, Any]) -> None:
    """FastAPI documents a 422 for every route with parameters; this API answers a request
    that fails validation with 400 ``invalid_request`` (documented on each route) instead."""
    for path in schema["paths"].values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def _link(schema: dict[str, Any]) -> None:
    operations = {
        op["operationId"]: op
        for path in schema["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and "operationId" in op
    }
    for (source, status), links in LINKS.items():
        response = operations[source]["responses"][status]
        response["links"] = {
            name: {"operationId": target, "parameters": parameters}
            for name, (target, parameters) in links.items()
            if target in operations
        }
