"""/docs and /redoc work with no internet: every file they load comes from the gateway itself,
under a Content-Security-Policy that allows this origin only, and the operations list renders
in a real browser whose every other host is unreachable."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from support import Gateway

pytestmark = pytest.mark.slow


def _origin(gateway: Gateway) -> str:
    return f"http://127.0.0.1:{gateway.port}"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_their_own_files(gateway: Gateway, page: str) -> None:
    origin = _origin(gateway)
    answer = httpx.get(origin + page)
    assert answer.status_code == 200
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "http" not in csp  # no third-party origin
    assert "cdn" not in answer.text.lower()
    assert "<script>" not in answer.text  # no inline script
    for src in (
        ("swagger-ui-bundle.js", "swagger-init.js")
        if page == "/docs"
        else (
            "redoc.js",
            "redoc-init.js",
        )
    ):
        path = next(part.split('"')[1] for part in answer.text.split("src=")[1:] if src in part)
        assert path.startswith("/docs/assets/")
        asset = httpx.get(origin + path)
        assert asset.status_code == 200
        assert "javascript" in asset.headers["content-type"]


@pytest.mark.parametrize(
    ("page", "rendered"),
    [("/docs", ".opblock-summary"), ("/redoc", "[data-section-id^='operation']")],
)
def test_docs_render_the_operations_with_the_network_cut_off(
    gateway: Gateway, browser: Any, screenshots: Path, page: str, rendered: str
) -> None:
    origin = _origin(gateway)
    context = browser.new_context()
    outside: list[str] = []
    problems: list[str] = []

    def only_this_gateway(route: Any) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(origin).netloc:
            route.continue_()
        else:  # the network is cut off: nothing but the gateway answers
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_this_gateway)
    browser_page = context.new_page()
    browser_page.on(
        "console", lambda msg: problems.append(msg.text) if msg.type == "error" else None
    )
    browser_page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        browser_page.goto(origin + page)
        browser_page.wait_for_selector(rendered, timeout=20_000)
        operations = browser_page.locator(rendered).count()
        browser_page.screenshot(path=str(screenshots / f"api{page.replace('/', '-')}.png"))
    finally:
        context.close()
    assert operations >= 10  # the gateway's operations, listed
    assert outside == []
    assert problems == []  # CSP violations and script errors are reported as console errors
