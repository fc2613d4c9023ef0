"""The console in a real browser: sign-in with password and TOTP, lock-out, CSRF refusal,
sign-out everywhere. Every page is checked for CSP violations, console errors and serious
accessibility problems (axe-core), and photographed under test-output/screenshots/."""

from __future__ import annotations

from typing import Any

import pytest

from browser_support import GuardedPage, create_user, sign_in
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
