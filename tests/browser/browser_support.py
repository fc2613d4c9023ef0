"""Helpers for console pages in a real browser: a guard that fails on any CSP violation or
console error, the axe-core accessibility check, screenshots, and signing in as a user would.

Import as ``from browser_support import ...`` (tests/browser is on sys.path under pytest).
Fixtures built on these (a gateway, users, guarded pages) are in this folder's conftest.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from console_support import PASSWORD, User
from support import IN_CI, Gateway

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
#: Impacts that fail a page (axe's four levels: minor, moderate, serious, critical).
FAILING_IMPACTS = frozenset({"serious", "critical"})


@cache
def axe_source() -> str:
    if not AXE.exists():
        message = "axe-core is not installed: (cd tests/browser && npm ci)"
        if IN_CI:
            pytest.fail(f"{message}; .ci/run installs it")
        pytest.skip(message)
    return AXE.read_text()


@dataclass
class GuardedPage:
    """A page whose console errors, uncaught exceptions and CSP violations are collected in
    ``problems``; the ``console_page`` fixture fails the test if any occurred."""

    page: Any
    origin: str
    screenshots: Path
    problems: list[str] = field(default_factory=list)
    user: User | None = None

    def goto(self, path: str) -> Any:
        return self.page.goto(self.origin + path)

    def check(self, name: str) -> None:
        """The page as it stands: no problems so far, no serious accessibility violation, and a
        screenshot saved as ``console-<name>.png``."""
        self.page.screenshot(path=str(self.screenshots / f"console-{name}.png"), full_page=True)
        assert self.problems == [], self.problems
        violations = accessibility_violations(self.page)
        assert violations == [], json.dumps(violations, indent=1)[:4000]


def guard(page: Any, origin: str, screenshots: Path) -> GuardedPage:
    guarded = GuardedPage(page, origin, screenshots)

    def on_console(message: Any) -> None:
        if message.type == "error":  # CSP violations are reported as console errors too
            guarded.problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: guarded.problems.append(f"page error: {exc}"))
    page.on("dialog", lambda dialog: dialog.accept())  # "Revoke this key?" and the like: yes
    # A violation report as well, in case a browser stops printing them.
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e =>"
        " console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    return guarded


def accessibility_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page (WCAG 2.x A and AA rules and
    best practices). Injected through the DevTools protocol, which the page's CSP does not
    govern, so the page's own policy stays strict while it is checked."""
    page.evaluate(axe_source() + "\n;undefined")
    results = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["html"][:200] for n in v["nodes"][:5]],
        }
        for v in results
        if v.get("impact") in FAILING_IMPACTS
    ]


def create_user(gateway: Gateway, email: str, role: str = "owner") -> User:
    """``msgine users create`` as an operator runs it, with a password of their choosing
    (given on standard input); the user sets up TOTP at first sign-in (``sign_in``)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "msgine",
            "users",
            "create",
            email,
            "--role",
            role,
            "--ask-password",
            "--json",
        ],
        env=gateway.env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    return User(view["id"], view["email"], role, view["account"], PASSWORD)


def sign_in(guarded: GuardedPage, user: User) -> None:
    """Sign in through the pages: password, then the TOTP code (setting TOTP up from the
    enrolment page the first time, keeping the secret and recovery codes on ``user``)."""
    page = guarded.page
    guarded.goto("/console/signin")
    page.fill("#email", user.email)
    page.fill("#password", user.password)
    page.click("button[type=submit]")
    if page.url.endswith("/console/signin/enrol"):
        user.totp_secret = page.text_content("#totp-secret").strip()
        page.fill("#code", user.code())
        page.click("main button[type=submit]")
        page.wait_for_selector("#recovery-codes")
        user.recovery_codes = [
            c.strip() for c in page.locator("#recovery-codes code").all_text_contents()
        ]
        page.click("text=I have saved them")
    else:
        assert page.url.endswith("/console/signin/code"), page.url
        page.fill("#code", user.code())
        page.click("main button[type=submit]")
    page.wait_for_url(guarded.origin + "/console/")
