"""The keys page in a real browser: a new key is shown once, works against the API, and once
revoked in the console the API refuses it."""

from __future__ import annotations

import httpx
import pytest
from browser_support import GuardedPage, create_user, sign_in

from support import Gateway

pytestmark = pytest.mark.slow


def test_create_a_key_see_it_once_then_revoke_it_and_the_api_refuses_it(
    console_gateway: Gateway, console_page: GuardedPage
) -> None:
    user = create_user(console_gateway, "keys@example.com", role="developer")
    sign_in(console_page, user)
    page = console_page.page
    console_page.goto("/console/keys")
    console_page.check("keys")
    page.click("text=Create a key")
    page.fill("#key-name", "billing service")
    page.click("#create-key button[type=submit]")
    secret = page.text_content("#new-key").strip()
    assert secret.startswith("msgine_test_")
    console_page.check("key-created")

    api = f"{console_gateway.base_url}/messages"
    assert httpx.get(api, headers={"Authorization": f"Bearer {secret}"}).status_code == 200

    console_page.goto("/console/keys")  # listed, but never shown again
    assert secret not in page.content()
    row = page.locator("tr", has_text="billing service")
    assert row.locator(".status").text_content() == "active"
    page.get_by_role("button", name="Revoke billing service", exact=True).click()
    page.wait_for_load_state()
    assert page.locator("tr", has_text="billing service").locator(".status").text_content() == (
        "revoked"
    )
    console_page.check("key-revoked")
    refused = httpx.get(api, headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401
