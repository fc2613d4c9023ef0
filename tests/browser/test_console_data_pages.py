"""The console's data pages in a real browser (Chromium, against a real ``msgine serve``): a
message sent with the API is watched until delivered, its number revealed (and the reveal
found in the audit log), a webhook delivery replayed, every page checked for each role (no
CSP violation, no console error, no serious axe-core violation, a screenshot each), and the
main navigation used with the keyboard alone."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from browser_support import GuardedPage, create_user, sign_in

from support import Gateway

pytestmark = pytest.mark.slow

NUMBER = "+256701521269"
MASKED = "+256 70* *** 269"
NAV = ["Overview", "Messages", "Keys", "Webhooks", "Compliance", "Audit", "Carriers"]


def _api(gateway: Gateway, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    return httpx.request(method, gateway.base_url + path, headers=headers, timeout=10, **kwargs)


@pytest.fixture(scope="module")
def sent(console_gateway: Gateway) -> dict[str, str]:
    """A message to a number and a webhook endpoint whose receiver is not listening (its
    deliveries fail and are retried), both made with the API."""
    endpoint = _api(
        console_gateway, "POST", "/webhooks", json={"url": "https://127.0.0.1:1/hook"}
    ).json()
    message = _api(console_gateway, "POST", "/messages/sms", json={"to": NUMBER, "message": "Hi"})
    assert message.status_code == 201, message.text
    return {"message": message.json()["id"], "endpoint": endpoint["id"]}


def _wait_for(
    page: Any, selector: str, text: str, reload: bool = True, seconds: float = 20
) -> None:
    """Reload until ``selector`` shows ``text`` (what a person watching the page would do)."""
    deadline = time.monotonic() + seconds
    while text not in (page.text_content(selector) or ""):
        assert time.monotonic() < deadline, f"{selector} never showed {text!r}"
        time.sleep(0.3)
        if reload:
            page.reload()


def test_a_message_reaches_delivered_and_its_number_is_revealed_once_audited(
    console_gateway: Gateway, console_page: GuardedPage, sent: dict[str, str]
) -> None:
    user = create_user(console_gateway, "watcher@example.com", role="developer")
    sign_in(console_page, user)
    page = console_page.page
    console_page.goto("/console/messages")
    page.click(f"a[href='/console/messages/{sent['message']}']")
    _wait_for(page, ".facts .badge", "delivered")
    assert [s.strip() for s in page.locator(".timeline .badge").all_text_contents()] == [
        "queued",
        "sent",
        "delivered",
    ]
    assert page.text_content(".recipient .phone") == MASKED
    assert NUMBER not in page.content()
    console_page.check("message-delivered")

    page.get_by_role("button", name=f"Reveal number {MASKED}").click()
    page.wait_for_selector(".phone.revealed")
    assert page.text_content(".phone.revealed") == NUMBER
    console_page.check("message-revealed")

    console_page.goto("/console/audit")
    row = page.locator("tr", has_text="console.number_reveal")
    assert row.count() == 1 and f"user:{user.id}" in row.text_content()
    assert NUMBER not in page.content()
    assert "verified" in page.text_content("#chain-title")


def test_a_failed_webhook_delivery_is_replayed_from_its_page(
    console_gateway: Gateway, console_page: GuardedPage, sent: dict[str, str]
) -> None:
    user = create_user(console_gateway, "hooks@example.com", role="developer")
    sign_in(console_page, user)
    page = console_page.page
    console_page.goto(f"/console/webhooks/{sent['endpoint']}")
    _wait_for(page, "main", "connection_failed")  # the first attempts, refused
    before = page.locator("section.delivery").count()
    first = page.locator("section.delivery").last
    assert MASKED in (first.locator("pre.excerpt").first.text_content() or "")
    assert NUMBER not in page.content()
    first.get_by_role("button", name="Replay").click()
    page.wait_for_url("**?done=replayed")
    assert "queued again" in page.text_content(".notice")
    assert page.locator("section.delivery").count() == before + 1
    console_page.check("webhook-replayed")
    replays = _api(console_gateway, "GET", "/audit").json()["entries"]
    assert any(
        e["action"] == "webhook.delivery_replayed" and e["actor"] == f"user:{user.id}"
        for e in replays
    )


@pytest.mark.parametrize("role", ["owner", "developer", "viewer"])
def test_every_page_passes_for_each_role(
    console_gateway: Gateway, console_page: GuardedPage, sent: dict[str, str], role: str
) -> None:
    user = create_user(console_gateway, f"pages-{role}@example.com", role=role)
    sign_in(console_page, user)
    pages = {
        "overview": "/console/",
        "overview-test": "/console/?mode=test",
        "messages": "/console/messages",
        "message": f"/console/messages/{sent['message']}",
        "webhooks": "/console/webhooks",
        "webhook": f"/console/webhooks/{sent['endpoint']}",
        "compliance": "/console/compliance?mode=test",
        "audit": "/console/audit",
        "carriers": "/console/carriers",
    }
    for name, path in pages.items():
        answer = console_page.goto(path)
        assert answer.status == 200, path
        console_page.check(f"{role}-{name}")
        assert NUMBER not in console_page.page.content()
    if role == "owner":  # the layout does not depend on the role
        console_page.page.set_viewport_size({"width": 390, "height": 844})  # a phone
        for name in ("overview", "message", "webhook"):
            console_page.goto(pages[name])
            console_page.check(f"phone-{name}")


def test_the_main_navigation_works_with_the_keyboard(
    console_gateway: Gateway, console_page: GuardedPage
) -> None:
    user = create_user(console_gateway, "keyboard@example.com", role="viewer")
    sign_in(console_page, user)
    page = console_page.page
    console_page.goto("/console/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    console_page.goto("/console/")
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        text = page.evaluate("document.activeElement.textContent").strip()
        if text in NAV:
            reached.append(text)
        if text == NAV[-1]:
            break
    assert reached == NAV
    for _ in range(len(NAV) - NAV.index("Messages") - 1):
        page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.textContent").strip() == "Messages"
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/messages")
    current = page.locator("nav[aria-label=Main] a[aria-current=page]")
    assert current.text_content() == "Messages"
    console_page.check("keyboard-messages")
