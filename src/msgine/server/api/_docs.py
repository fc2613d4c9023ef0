"""Interactive API docs (Swagger UI at ``/docs``, ReDoc at ``/redoc``) served without a CDN.

FastAPI's own pages load their scripts from a CDN and start them with an inline script, so
they render blank on a machine without internet and need a lax Content-Security-Policy. Here
every file comes from the installed packages: the Swagger UI and ReDoc bundles that
``fastapi-offline`` ships (kept current there, so we do not vendor 2.8 MB of JavaScript), and
our own small start-up scripts. The pages' CSP allows this origin only. ReDoc and Swagger UI
set inline ``style`` attributes and ReDoc starts a worker from a ``blob:`` URL, so those two
allowances remain; no inline or third-party script runs. ReDoc's bundle always shows its
maker's logo from their CDN (no option turns it off), so the bundle is served with that one
address pointed at a file of ours.
"""

from __future__ import annotations

from functools import cache
from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

ASSETS_PATH = "/docs/assets"
_BUNDLES = Path(fastapi_offline.__file__).parent / "static"
_OURS = Path(__file__).parent / "static"
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"

DOCS_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
_HEADERS = {
    "Content-Security-Policy": DOCS_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png">
{head}
</head>
<body>
<div id="{root}" data-openapi-url="{openapi}"></div>
{scripts}
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` and their files; call with FastAPI's own pages turned off."""
    openapi = app.openapi_url or "/openapi.json"
    app.mount(f"{ASSETS_PATH}/vendor", StaticFiles(directory=_BUNDLES), name="docs-vendor")
    app.mount(f"{ASSETS_PATH}/init", StaticFiles(directory=_OURS), name="docs-init")

    def page(title: str, root: str, head: str, scripts: list[str]) -> HTMLResponse:
        html = _PAGE.format(
            title=escape(f"{app.title} - {title}"),
            assets=f"{ASSETS_PATH}/vendor",
            head=head,
            root=root,
            openapi=escape(openapi),
            scripts="\n".join(f'<script src="{src}"></script>' for src in scripts),
        )
        return HTMLResponse(html, headers=_HEADERS)

    @app.get(f"{ASSETS_PATH}/redoc.js", include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(
            _redoc_bundle(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
        )

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return page(
            "Swagger UI",
            "swagger-ui",
            f'<link rel="stylesheet" href="{ASSETS_PATH}/vendor/swagger-ui.css">',
            [f"{ASSETS_PATH}/vendor/swagger-ui-bundle.js", f"{ASSETS_PATH}/init/swagger-init.js"],
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return page(
            "ReDoc",
            "redoc",
            "",
            [f"{ASSETS_PATH}/redoc.js", f"{ASSETS_PATH}/init/redoc-init.js"],
        )


@cache
def _redoc_bundle() -> bytes:
    """ReDoc's bundle with its logo's CDN address pointed at our own favicon (read once)."""
    bundle = (_BUNDLES / "redoc.standalone.js").read_bytes()
    return bundle.replace(_REDOC_LOGO, f"{ASSETS_PATH}/vendor/favicon.png".encode())
