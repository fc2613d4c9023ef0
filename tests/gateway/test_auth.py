"""API keys at the HTTP edge: every way to fail authentication, scopes, allow-lists, rotation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from msgine._keyformat import generate_key
from msgine.server.keys import revoke_key, rotate_key
from msgine.server.storage._tables import api_keys


async def _status(api: Any, headers: dict[str, str]) -> tuple[int, str]:
    response = await api.client.get("/api/v1/messages", headers=headers)
    return response.status_code, response.json()["error"][
        "code"
    ] if response.status_code >= 400 else ""


@pytest.mark.parametrize(
    "style",
    [
        lambda k: {"X-Api-Key": k},
        lambda k: {"Authorization": f"Bearer {k}"},
        lambda k: {"Authorization": k},
    ],
    ids=["x-api-key", "bearer", "bare-authorization"],
)
async def test_all_three_header_styles_authenticate(api: Any, style: Any) -> None:
    assert await _status(api, style(api.key)) == (200, "")


async def test_missing_unknown_and_wrong_checksum_keys_are_401(api: Any) -> None:
    assert await _status(api, {}) == (401, "unauthorized")
    assert await _status(api, {"X-Api-Key": generate_key("test")}) == (401, "unauthorized")
    tampered = api.key[:-1] + ("A" if api.key[-1] != "A" else "B")
    assert await _status(api, {"X-Api-Key": tampered}) == (401, "unauthorized")
    assert await _status(api, {"X-Api-Key": "not-a-key"}) == (401, "unauthorized")


async def test_revoked_key_is_401_on_the_next_request(api: Any) -> None:
    key = api.new_key(name="to revoke")
    assert await _status(api, {"X-Api-Key": key}) == (200, "")
    key_id = api.runtime.db.read(
        lambda c: c.execute(sa.select(api_keys.c.id).where(api_keys.c.name == "to revoke")).scalar()
    )
    now = api.runtime.now()
    api.runtime.db.write(lambda c: revoke_key(c, key_id, now=now, vault=api.runtime.vault))
    assert await _status(api, {"X-Api-Key": key}) == (401, "unauthorized")


async def test_expired_key_is_401(api: Any, clock: Any) -> None:
    key = api.new_key(expires_at=api.runtime.now() + timedelta(days=1))
    assert await _status(api, {"X-Api-Key": key}) == (200, "")
    clock.advance(days=1, seconds=1)
    assert await _status(api, {"X-Api-Key": key}) == (401, "unauthorized")


async def test_missing_scope_is_403(api: Any) -> None:
    reader = api.new_key(scopes=["messages:read"])
    assert await _status(api, {"X-Api-Key": reader}) == (200, "")
    response = await api.send(key=reader)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert response.json()["error"]["details"] == {"requiredScope": "messages:send"}


async def test_address_outside_allow_list_is_403(api: Any) -> None:
    outside = api.new_key(allowed_ips=["203.0.113.0/24"])
    inside = api.new_key(allowed_ips=["127.0.0.0/8"])
    # httpx's ASGI transport presents the client as 127.0.0.1.
    assert await _status(api, {"X-Api-Key": outside}) == (403, "forbidden")
    assert await _status(api, {"X-Api-Key": inside}) == (200, "")


async def test_another_accounts_message_is_404(api: Any) -> None:
    sent = await api.send()
    message_id = sent.json()["id"]
    _, other_key = api.new_account("someone else")
    for path in (f"/api/v1/messages/{message_id}", f"/api/v1/developers/{message_id}"):
        response = await api.client.get(path, headers=api.headers(other_key))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    listing = await api.client.get("/api/v1/messages", headers=api.headers(other_key))
    assert listing.json()["total"] == 0


async def test_rotated_key_works_in_grace_period_and_not_after(api: Any, clock: Any) -> None:
    old = api.new_key(name="rotating")
    key_id = api.runtime.db.read(
        lambda c: c.execute(sa.select(api_keys.c.id).where(api_keys.c.name == "rotating")).scalar()
    )
    now = api.runtime.now()
    new = api.runtime.db.write(
        lambda c: rotate_key(c, api.runtime.vault, key_id, now=now, grace=timedelta(hours=2))
    )
    assert await _status(api, {"X-Api-Key": old}) == (200, "")
    assert await _status(api, {"X-Api-Key": new.secret}) == (200, "")
    clock.advance(hours=2, seconds=1)
    assert await _status(api, {"X-Api-Key": old}) == (401, "unauthorized")
    assert await _status(api, {"X-Api-Key": new.secret}) == (200, "")


async def test_rotation_over_the_api_returns_the_new_key_once(api: Any) -> None:
    created = await api.client.post("/api/v1/keys", json={"name": "api"}, headers=api.headers())
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("msgine_test_")
    rotated = await api.client.post(
        f"/api/v1/keys/{body['id']}/rotate", json={"graceHours": 0}, headers=api.headers()
    )
    assert rotated.status_code == 201
    assert await _status(api, {"X-Api-Key": body["key"]}) == (401, "unauthorized")
    assert await _status(api, {"X-Api-Key": rotated.json()["key"]}) == (200, "")
    listing = await api.client.get("/api/v1/keys", headers=api.headers())
    text = listing.text
    assert body["key"] not in text and rotated.json()["key"] not in text
    assert all(k["redactedKey"].startswith("msgine_test_...") for k in listing.json()["keys"])


async def test_test_keys_cannot_mint_live_keys(api: Any) -> None:
    response = await api.client.post("/api/v1/keys", json={"mode": "live"}, headers=api.headers())
    assert response.status_code == 403


async def test_database_never_holds_a_plaintext_key(api: Any) -> None:
    keys = [api.key, api.new_key(), api.new_key(mode="live")]
    dump = api.runtime.db.read(
        lambda c: [tuple(map(str, row)) for row in c.execute(sa.select(api_keys)).all()]
    )
    flat = " ".join(" ".join(row) for row in dump)
    for key in keys:
        assert key not in flat
        assert key[len("msgine_test_") : -4] not in flat
