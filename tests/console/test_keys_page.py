"""The keys page calls the keys and incident services: created, rotated and compromised keys are
shown once and work; every change is audited with the console user as the actor."""

from __future__ import annotations

import re

from console_support import Console

_SECRET = re.compile(r'id="new-key">(msgine_(?:test|live)_[A-Za-z0-9]+)<')


def _secret(html: str) -> str:
    found = _SECRET.search(html)
    assert found, "no key on the page"
    return found.group(1)


async def _works(console: Console, key: str) -> int:
    answer = await console.api.client.get("/api/v1/messages", headers=console.api.headers(key))
    return answer.status_code


async def test_create_rotate_compromise_and_their_audit(console: Console) -> None:
    from msgine.server.audit import list_entries

    created = await console.client.post(
        "/console/keys",
        data={
            "csrf_token": console.csrf,
            "name": "billing",
            "mode": "test",
            "scopes": ["messages:read", "messages:send"],
            "expires_in_days": "30",
        },
    )
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    first = _secret(created.text)
    assert await _works(console, first) == 200
    page = await console.client.get("/console/keys")
    assert first not in page.text and first[-4:] in page.text  # listed, never shown again
    key_id = re.search(r'<tr id="(key_[^"]+)">\s*<td>billing', page.text).group(1)  # type: ignore[union-attr]

    rotated = await console.post(f"/console/keys/{key_id}/rotate", grace_hours="1")
    second = _secret(rotated.text)
    assert await _works(console, first) == 200  # within the grace period
    assert await _works(console, second) == 200

    new_id = re.search(r"is replaced by <code>(key_[^<]+)</code>", rotated.text).group(1)  # type: ignore[union-attr]
    compromised = await console.post(f"/console/keys/{new_id}/compromise")
    third = _secret(compromised.text)
    assert "What the compromised key was used for" in compromised.text
    assert await _works(console, second) == 401
    assert await _works(console, third) == 200

    entries = console.api.runtime.db.read(
        lambda conn: list_entries(conn, console.api.account_id, limit=50)
    )
    by_user = {e["action"] for e in entries if e["actor"] == f"user:{console.user.id}"}
    assert {"key.create", "key.rotate", "key.revoke", "key.compromise"} <= by_user
    assert all(s not in str(entries) for s in (first, second, third))


async def test_a_bad_form_is_a_clear_error_page_not_a_500(console: Console) -> None:
    answer = await console.post("/console/keys", scopes="messages:delete")
    assert answer.status_code == 400 and "Unknown or empty scopes" in answer.text
    answer = await console.post("/console/keys/key_nope/revoke")
    assert answer.status_code == 404 and "not found" in answer.text
    answer = await console.post("/console/keys", expires_in_days="forever")
    assert answer.status_code == 400 and "expires_in_days" in answer.text
