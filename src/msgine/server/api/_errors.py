"""The contract's error body, used for every error the API returns."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from msgine.server.api._responses import JSONBody


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message, "details": details or {}}
    error.update(extra or {})
    return JSONBody(
        {"error": error, "meta": {"requestId": request_id_of(request)}},
        status_code=status,
        headers=headers,
    )
