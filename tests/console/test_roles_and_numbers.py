"""Roles decide what a user may do (one table, enforced in one place) and numbers stay masked
until a user allowed to reveals one, which the audit log records."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from console_support import Console, make_user, signed_in

DOCS = Path(__file__).parents[2] / "docs" / "console.md"


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+256701521269", "+256 70* *** 269"),
        ("+12025550123", "+1 20* *** * 123"),
        ("+447911123456", "+44 79* *** * 456"),
        ("", ""),
    ],
)
def test_numbers_are_masked_keeping_country_two_leading_and_three_last_digits(
    number: str, masked: str
) -> None:
    from msgine.server.console import mask_phone

    assert mask_phone(number) == masked


def test_the_docs_roles_table_is_the_enforced_table() -> None:
    from msgine.server.console import PERMISSIONS, ROLES

    rows = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 + len(ROLES) and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = {
                r for r, c in zip(ROLES, cells[2:], strict=True) if c == "yes"
            }
    assert rows == {p: set(holders) for p, (holders, _) in PERMISSIONS.items()}


async def _as(api: Any, role: str) -> Any:
    user = make_user(api.runtime, api.account_id, email=f"{role}@example.com", role=role)
    return signed_in(api, user)


async def test_a_viewer_sees_keys_but_cannot_change_or_reveal(api: Any) -> None:
    from msgine.server.keys import list_keys

    async for viewer in await _as(api, "viewer"):
        page = await viewer.client.get("/console/keys")
        assert page.status_code == 200
        assert 'action="/console/keys"' not in page.text  # no create form shown
        key_id = api.runtime.db.read(lambda c: list_keys(c, api.account_id))[0]["id"]
        for path in ("/console/keys", f"/console/keys/{key_id}/revoke"):
            refused = await viewer.post(path, name="x")
            assert refused.status_code == 403 and "role does not allow" in refused.text
        refused = await viewer.post("/console/reveal", kind="recipient", ref="rcp_x")
        assert refused.status_code == 403
    assert all(k["revoked_at"] is None for k in api.runtime.db.read(lambda c: list_keys(c)))


async def test_a_developer_reveals_one_number_and_the_reveal_is_audited(api: Any) -> None:
    from msgine.server.audit import list_entries

    ref = await _recipient_id_with(api, api.key)
    async for developer in await _as(api, "developer"):
        shown = await developer.client.post(
            "/console/reveal",
            data={"kind": "recipient", "ref": ref, "csrf_token": developer.csrf},
            headers={"Accept": "application/json"},
        )
        assert shown.status_code == 200 and shown.json() == {"number": "+256701521269"}
        page = await developer.post("/console/reveal", kind="recipient", ref=ref)
        assert "+256701521269" in page.text  # without JavaScript: a page with the number
        entries = api.runtime.db.read(lambda conn: list_entries(conn, api.account_id, limit=50))
        reveals = [e for e in entries if e["action"] == "console.number_reveal"]
        assert len(reveals) == 2
        assert reveals[0]["target"] == f"recipient:{ref}"
        assert reveals[0]["actor"] == f"user:{developer.user.id}"
        assert "+256701521269" not in str(entries) and "701521269" not in str(entries)


async def test_another_accounts_number_is_not_revealed(console: Console) -> None:
    api = console.api
    _, other_key = api.new_account()
    ref = await _recipient_id_with(api, other_key)
    shown = await console.client.post(
        "/console/reveal",
        data={"kind": "recipient", "ref": ref, "csrf_token": console.csrf},
        headers={"Accept": "application/json"},
    )
    assert shown.status_code == 404 and shown.json() == {"number": None}


async def _recipient_id_with(api: Any, key: str) -> str:
    sent = await api.send(key=key)
    assert sent.status_code == 201
    message_id = sent.json()["id"]
    sql = "SELECT id FROM recipients WHERE message_id = :m"
    import sqlalchemy as sa

    return str(
        api.runtime.db.read(lambda conn: conn.execute(sa.text(sql), {"m": message_id}).scalar_one())
    )


def test_every_console_route_names_its_permission() -> None:
    """No route without an access decision: each is public (sign-in, static files) or depends
    on ``require``."""
    from msgine.server.console import ROUTES

    public = re.compile(r"^/(signin.*|static.*)$")
    for module in ROUTES:
        for route in module.router.routes:
            path = getattr(route, "path", "")
            if public.match(path):
                continue
            calls = {d.call.__qualname__ for d in route.dependant.dependencies}  # type: ignore[attr-defined]
            assert any("require" in c for c in calls), path
