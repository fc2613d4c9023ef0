"""API5:2023 Broken function level authorization: what a key may do beyond its own reach.

A key never makes, rotates into or replaces a key stronger than itself, on any axis; operator
settings are ceilings an account may only tighten; simulator traffic never changes live
compliance state, and test-mode events never reach live endpoints.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from msgine.server import events as event_service
from msgine.server.accounts import update_policy
from msgine.server.compliance import _suppressions
from msgine.server.storage._tables import api_keys, events, webhook_deliveries

PHONE = "+256701521269"
ALL_SCOPES = [
    "messages:send",
    "messages:read",
    "webhooks:manage",
    "keys:manage",
    "compliance:manage",
    "audit:read",
]


async def _create(api: Any, key: str, **body: Any) -> Any:
    return await api.client.post("/api/v1/keys", json=body, headers=api.headers(key))


def _refused(response: Any, axis: str) -> dict[str, Any]:
    """403 ``forbidden`` naming ``axis``; the body never holds a key."""
    assert response.status_code == 403, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "forbidden"
    assert axis in error["message"] and axis in error["details"]["exceeds"]
    assert "msgine_test_" not in response.text and "msgine_live_" not in response.text
    return error


# --- item 1: a key never creates a stronger key ------------------------------------------------


async def test_the_reported_escalation_is_refused(api: Any) -> None:
    """keys:manage only, an allow-list, a day's life and 5/minute cannot mint a key with every
    scope, no allow-list, no expiry and 1000000/second."""
    weak = api.new_key(
        scopes=["keys:manage"],
        allowed_ips=["127.0.0.0/8"],
        expires_at=api.runtime.now() + timedelta(days=1),
        rate_limit="5/minute",
    )
    response = await _create(
        api,
        weak,
        scopes=ALL_SCOPES,
        allowedIps=["0.0.0.0/0"],
        expiresInDays=3650,
        rateLimit="1000000/second",
    )
    error = _refused(response, "scopes")
    assert set(error["details"]["exceeds"]) == {"scopes", "allowedIps", "expiresAt", "rateLimit"}


async def test_scopes_axis(api: Any) -> None:
    weak = api.new_key(scopes=["keys:manage", "messages:read"])
    _refused(await _create(api, weak, scopes=["keys:manage", "messages:send"]), "scopes")
    allowed = await _create(api, weak, scopes=["messages:read"])
    assert allowed.status_code == 201
    inherited = await _create(api, weak)  # left out: the creator's own scopes, not all
    assert inherited.json()["scopes"] == ["messages:read", "keys:manage"]


async def test_address_axis(api: Any) -> None:
    weak = api.new_key(allowed_ips=["127.0.0.0/8"])
    _refused(await _create(api, weak, allowedIps=["10.0.0.0/8"]), "allowedIps")
    _refused(await _create(api, weak, allowedIps=["0.0.0.0/0"]), "allowedIps")
    _refused(await _create(api, weak, allowedIps=[]), "allowedIps")  # [] is every address
    narrower = await _create(api, weak, allowedIps=["127.0.0.1"])
    assert narrower.status_code == 201 and narrower.json()["allowedIps"] == ["127.0.0.1/32"]
    inherited = await _create(api, weak)
    assert inherited.json()["allowedIps"] == ["127.0.0.0/8"]


async def test_lifetime_axis(api: Any) -> None:
    expires = api.runtime.now() + timedelta(days=2)
    weak = api.new_key(expires_at=expires)
    _refused(await _create(api, weak, expiresInDays=30), "expiresAt")
    shorter = await _create(api, weak, expiresInDays=1)
    assert shorter.status_code == 201
    inherited = await _create(api, weak)  # no expiry asked: the creator's, not "never"
    assert inherited.json()["expiresAt"] is not None


async def test_rate_limit_axis(api: Any) -> None:
    weak = api.new_key(rate_limit="5/minute")
    _refused(await _create(api, weak, rateLimit="1000000/second"), "rateLimit")
    _refused(await _create(api, weak, rateLimit="10/minute"), "rateLimit")
    _refused(await _create(api, weak, rateLimit="1/second"), "rateLimit")  # 60 a minute
    tighter = await _create(api, weak, rateLimit="1/hour;5/minute")
    assert tighter.status_code == 201
    inherited = await _create(api, weak)
    assert inherited.json()["rateLimit"] == "5/minute"


async def test_mode_axis(api: Any) -> None:
    _refused(await _create(api, api.key, mode="live"), "mode")
    live = api.new_key(mode="live")
    _refused(await _create(api, live, mode="test"), "mode")
    made = await _create(api, live)
    assert made.status_code == 201 and made.json()["key"].startswith("msgine_live_")


async def test_a_refused_key_does_not_exist(api: Any) -> None:
    weak = api.new_key(scopes=["keys:manage"])
    before = api.runtime.db.read(
        lambda c: c.execute(sa.select(sa.func.count(api_keys.c.id))).scalar()
    )
    _refused(await _create(api, weak, scopes=ALL_SCOPES), "scopes")
    after = api.runtime.db.read(
        lambda c: c.execute(sa.select(sa.func.count(api_keys.c.id))).scalar()
    )
    assert after == before


@pytest.mark.parametrize("action", ["rotate", "compromise"])
async def test_no_rotation_into_a_stronger_key(api: Any, action: str) -> None:
    """Rotating (or replacing) a key hands its new secret to the caller."""
    weak = api.new_key(scopes=["keys:manage"], name="weak")
    strong_id = (await _create(api, api.key, name="strong")).json()["id"]
    response = await api.client.post(
        f"/api/v1/keys/{strong_id}/{action}", json={}, headers=api.headers(weak)
    )
    _refused(response, "scopes")
    weak_id = api.runtime.db.read(
        lambda c: c.execute(sa.select(api_keys.c.id).where(api_keys.c.name == "weak")).scalar()
    )
    own = await api.client.post(
        f"/api/v1/keys/{weak_id}/{action}", json={}, headers=api.headers(weak)
    )
    assert own.status_code == 201
    assert own.json()["scopes"] == ["keys:manage"]


# --- item 5: operator settings are ceilings ----------------------------------------------------


async def test_a_key_cannot_beat_the_operators_per_key_limit(api: Any) -> None:
    """The first key has no limit of its own: the operator's default is its ceiling."""
    error = _refused(await _create(api, api.key, rateLimit="1000000/second"), "rateLimit")
    assert error["details"]["exceeds"]["rateLimit"] == ["100/minute", "20/second"]
    assert (await _create(api, api.key, rateLimit="50/minute;5/second")).status_code == 201
    # The operator (the CLI's function: no creating key) may grant anything.
    key = api.new_key(mode="live", rate_limit="1000000/second")
    assert (await api.client.get("/api/v1/keys", headers=api.headers(key))).status_code == 200


async def _patch(api: Any, **changes: Any) -> Any:
    return await api.client.patch("/api/v1/account/policy", json=changes, headers=api.headers())


async def test_an_account_cannot_raise_the_operators_limits(api: Any) -> None:
    _refused(await _patch(api, recipientRateLimit="1000000/second"), "recipientRateLimit")
    _refused(await _patch(api, rateLimit="1000000/second"), "rateLimit")
    _refused(await _patch(api, dailyCap=10_000_000), "dailyCap")
    _refused(await _patch(api, operatorDailyCap=0), "operatorDailyCap")
    policy = (await api.client.get("/api/v1/account/policy", headers=api.headers())).json()
    assert policy["recipientRateLimit"] is None and policy["dailyCap"] is None
    # Tightening, window by window, is fine: 1/day keeps within 10/hour.
    assert (await _patch(api, recipientRateLimit="1/day")).status_code == 200
    assert (await _patch(api, rateLimit="100/minute", dailyCap=500)).status_code == 200


async def test_a_looser_limit_stored_earlier_does_not_apply(api: Any) -> None:
    """A value stored before the ceiling was enforced falls back to the operator's."""
    api.runtime.db.write(
        lambda conn: update_policy(conn, api.account_id, {"recipientRateLimit": "1000/hour"})
    )
    statuses = []
    for _ in range(11):
        response = await api.send(to=PHONE)
        statuses.append(response.json()["recipients"][0].get("errorCode"))
    assert statuses[:10] == [None] * 10
    assert statuses[10] == "recipient_rate_limited"  # the operator's 10/hour


# --- item 2: simulator traffic and live compliance state ---------------------------------------


async def _inbound(api: Any, text: str, key: str | None = None) -> Any:
    return await api.client.post(
        "/api/v1/simulator/inbound",
        json={"from": PHONE, "message": text},
        headers=api.headers(key),
    )


def _live_opt_out(api: Any) -> None:
    """A real opt-out, as a live carrier's inbound STOP records it."""
    vault, now = api.runtime.vault, api.runtime.now()
    api.runtime.db.write(
        lambda conn: _suppressions.suppress(
            conn,
            vault,
            account_id=api.account_id,
            mode="live",
            phone=PHONE,
            phone_index=vault.blind_index(api.account_id, PHONE),
            reason=_suppressions.OPT_OUT,
            source="keyword",
            now=now,
        )
    )


async def _status(api: Any, key: str) -> str:
    response = await api.send(key, to=PHONE)
    assert response.status_code == 201, response.text
    return str(response.json()["recipients"][0]["status"])


async def test_simulated_stop_does_not_opt_out_a_live_number(api: Any) -> None:
    live = api.new_key(mode="live")
    sender = api.new_key(scopes=["messages:send"])
    assert (await _inbound(api, "STOP", sender)).status_code == 201
    assert await _status(api, live) == "queued"
    assert await _status(api, sender) == "rejected"  # the test world has its opt-out


async def test_simulated_start_never_lifts_a_live_opt_out(api: Any) -> None:
    live = api.new_key(mode="live")
    _live_opt_out(api)
    assert await _status(api, live) == "rejected"
    assert (await _inbound(api, "START")).status_code == 201  # compliance:manage, test mode
    assert await _status(api, live) == "rejected"
    removed = await api.client.delete(f"/api/v1/suppressions/{PHONE}", headers=api.headers())
    assert removed.status_code == 404  # the test world has no such opt-out
    assert await _status(api, live) == "rejected"


async def test_lifting_an_opt_out_needs_compliance_manage(api: Any) -> None:
    sender = api.new_key(scopes=["messages:send"])
    await _inbound(api, "STOP", sender)
    refused = await _inbound(api, "START", sender)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert await _status(api, sender) == "rejected"
    assert (await _inbound(api, "START")).json()["changed"] is True  # with compliance:manage
    assert await _status(api, sender) == "queued"


def _deliveries_by_endpoint(api: Any, event_type: str) -> dict[str, list[bool]]:
    """{endpoint id: [livemode of each delivered body]} for events of ``event_type``."""
    vault = api.runtime.vault

    def read(conn: Any) -> dict[str, list[bool]]:
        rows = conn.execute(
            sa.select(webhook_deliveries.c.endpoint_id, events.c.id)
            .join(events, events.c.id == webhook_deliveries.c.event_id)
            .where(events.c.type == event_type)
        ).all()
        found: dict[str, list[bool]] = {}
        for endpoint_id, event_id in rows:
            body = json.loads(event_service.event_body(conn, vault, event_id) or b"{}")
            found.setdefault(endpoint_id, []).append(body["livemode"])
        return found

    return api.runtime.db.read(read)


async def _endpoint(api: Any, key: str, path: str) -> str:
    response = await api.client.post(
        "/api/v1/webhooks", json={"url": f"https://127.0.0.1:9/{path}"}, headers=api.headers(key)
    )
    assert response.status_code == 201, response.text
    assert response.json()["livemode"] is key.startswith("msgine_live_")
    return str(response.json()["id"])


async def test_test_events_are_marked_and_go_to_test_endpoints_only(api: Any) -> None:
    live = api.new_key(mode="live")
    live_endpoint = await _endpoint(api, live, "live")
    test_endpoint = await _endpoint(api, api.key, "test")
    await _inbound(api, "Hello")
    assert _deliveries_by_endpoint(api, "message.received") == {test_endpoint: [False]}
    await _inbound(api, "STOP")
    assert _deliveries_by_endpoint(api, "contact.opted_out") == {test_endpoint: [False]}
    await api.send(live, to="+256701521270")
    await api.send(to="+256701521271")
    await api.worker.run_once()
    sent = _deliveries_by_endpoint(api, "message.sent")  # (the test world also sent the
    assert set(sent) == {live_endpoint, test_endpoint}  # STOP's confirmation)
    assert sent[live_endpoint] == [True]
    assert sent[test_endpoint] and not any(sent[test_endpoint])
