"""A real browser: Debian's Chromium, driven by Playwright (whose own browser download cannot be
fetched here, so it is pointed at the system browser). Without Chromium these tests skip with
the reason; under CI=true (where .ci/run installs it) they fail instead."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import IN_CI, Gateway, gateway_env, require_extra, start_gateway

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{message}: .ci/run installs it")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """Per module: Playwright's sync API runs an event loop in this thread while it is open,
    and the asyncio tests that follow need the thread's loop free."""
    sync_api = require_extra("playwright.sync_api", "dev")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Path:
    """Where a test saves what it saw: test-output/screenshots/ (kept by CI as the run's output)."""
    root = Path(request.config.rootpath) / "test-output" / "screenshots"
    root.mkdir(parents=True, exist_ok=True)
    return root


# --- the console in a browser (see browser_support.py) -------------------------------------


@pytest.fixture(scope="module")
def console_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A real ``msgine serve`` for one module's console tests; its users are made with the CLI
    (``browser_support.create_user``)."""
    root = tmp_path_factory.mktemp("console")
    # Failed sign-ins also count towards the address's lock-out (10 a minute by default), which
    # would shut the whole module's browser (all on 127.0.0.1) out after a few lock-out tests.
    gw = start_gateway(gateway_env(root, MSGINE_AUTH_FAILURE_LIMIT="100/5minutes"), cwd=root)
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def console_page(browser: Any, console_gateway: Gateway, screenshots: Path) -> Iterator[Any]:
    """A fresh browser context (no cookies) with a guarded page: the test fails on any CSP
    violation, console error or uncaught exception in it."""
    from browser_support import guard

    context = browser.new_context()
    try:
        guarded = guard(context.new_page(), f"http://127.0.0.1:{console_gateway.port}", screenshots)
        yield guarded
        assert guarded.problems == [], guarded.problems
    finally:
        context.close()


_emails = iter(range(1_000_000))


@pytest.fixture
def signed_in_page(console_page: Any, console_gateway: Gateway) -> Any:
    """``console_page`` signed in as a new owner (made with the CLI, TOTP set up at first
    sign-in); the user is ``signed_in_page.user``."""
    from browser_support import create_user, sign_in

    user = create_user(console_gateway, f"owner{next(_emails)}@example.com", role="owner")
    sign_in(console_page, user)
    console_page.user = user
    return console_page
