"""The console in a real browser: sign-in with password and TOTP, lock-out, CSRF refusal,
sign-out everywhere. Every page is checked for CSP violations, console errors and serious
accessibility problems (axe-core), and photographed under test-output/screenshots/."""

from __future__ import annotations

from typing import Any

import pytest
from browser_support import GuardedPage, create_user, guard, sign_in

from support import Gateway

pytestmark = pytest.mark.slow


def test_first_sign_in_sets_up_totp_then_signs_in_with_a_code(
    console_gateway: Gateway, console_page: GuardedPage, browser: Any
) -> None:
    user = create_user(console_gateway, "first@example.com")
    page = console_page.page
    console_page.goto("/console/")
    assert page.url.endswith("/console/signin")  # not signed in: the sign-in page
    console_page.check("signin")
    sign_in(console_page, user)
    assert user.totp_secret and len(user.recovery_codes) == 10
    console_page.check("overview-placeholder")
    console_page.goto("/console/sessions")
    console_page.check("sessions")
    assert page.locator("tbody tr").count() == 1


def test_a_user_is_locked_out_after_repeated_failures(
    console_gateway: Gateway, console_page: GuardedPage
) -> None:
    user = create_user(console_gateway, "locked@example.com")
    page = console_page.page
    console_page.goto("/console/signin")
    for _ in range(5):
        page.fill("#email", user.email)
        page.fill("#password", "not the password at all")
        page.click("main button[type=submit]")
        assert "not right" in page.text_content("[role=alert]")
    page.fill("#email", user.email)
    page.fill("#password", user.password)  # the right password, too late
    page.click("main button[type=submit]")
    assert "Too many failed attempts" in page.text_content("[role=alert]")
    assert page.url.endswith("/console/signin")
    console_page.problems[:] = [p for p in console_page.problems if "status of 4" not in p]
    console_page.check("signin-locked")


def test_a_form_without_its_csrf_token_is_refused(signed_in_page: GuardedPage) -> None:
    console_page = signed_in_page
    page = console_page.page
    for token in ("wrong", None):
        console_page.goto("/console/sessions")
        # Change the form as a forged one would be (through DevTools, not the page's scripts).
        page.evaluate(
            "token => { const input = document.querySelector("
            "'form[action$=\"end-all\"] input[name=csrf_token]');"
            " if (token === null) input.remove(); else input.value = token; }",
            token,
        )
        page.click("text=Sign out everywhere")
        page.wait_for_load_state()
        assert "did not come from this console" in page.text_content("main")
    console_page.problems[:] = [p for p in console_page.problems if "status of 403" not in p]
    console_page.check("csrf-refused")
    console_page.goto("/console/sessions")  # still signed in: nothing was done
    assert page.url.endswith("/console/sessions")


def test_sign_out_everywhere_ends_the_other_sessions(
    console_gateway: Gateway, console_page: GuardedPage, browser: Any
) -> None:
    user = create_user(console_gateway, "everywhere@example.com")
    sign_in(console_page, user)
    other_context = browser.new_context()
    try:
        other = guard(other_context.new_page(), console_page.origin, console_page.screenshots)
        sign_in(other, user)
        console_page.goto("/console/sessions")
        assert console_page.page.locator("tbody tr").count() == 2
        console_page.page.click("text=Sign out everywhere")
        console_page.page.wait_for_url(console_page.origin + "/console/signin")
        other.goto("/console/sessions")
        assert other.page.url.endswith("/console/signin")  # the other browser is signed out
        assert other.problems == []
    finally:
        other_context.close()
