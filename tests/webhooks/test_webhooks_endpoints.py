"""The endpoints API: secret shown once and stored encrypted, CRUD, scopes, accounts, audit."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from webhooks_helpers import create_endpoint, standard_verifies

from msgine.server.storage._tables import audit_log, webhook_endpoints
from webhook_receiver import Receiver


async def test_create_shows_the_secret_once_and_stores_it_encrypted(
    api: Any, receiver: Receiver
) -> None:
    created = await create_endpoint(
        api, receiver.url(), events=["message.delivered"], description="orders"
    )
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert created["id"].startswith("we_")
    assert created["url"] == receiver.url()
    assert created["events"] == ["message.delivered"]
    assert created["createdAt"]
    listed = (await api.client.get("/api/v1/webhooks", headers=api.headers())).json()
    fetched = await api.client.get(f"/api/v1/webhooks/{created['id']}", headers=api.headers())
    for view in [*listed["webhooks"], fetched.json()]:
        assert "secret" not in view
        assert secret not in str(view)
    raw = api.runtime.db.read(
        lambda conn: conn.execute(sa.select(webhook_endpoints.c.secret)).scalar_one()
    )
    assert secret.encode() not in raw
    assert secret.removeprefix("whsec_").encode() not in raw


async def test_events_default_to_all_and_unknown_events_are_refused(
    api: Any, receiver: Receiver
) -> None:
    created = await create_endpoint(api, receiver.url())
    assert created["events"] == ["*"]
    response = await api.client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url(), "events": ["message.sent", "message.exploded"]},
        headers=api.headers(),
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["details"]["unknownEvents"] == ["message.exploded"]


async def test_update_and_delete(api: Any, receiver: Receiver) -> None:
    created = await create_endpoint(api, receiver.url())
    path = f"/api/v1/webhooks/{created['id']}"
    response = await api.client.patch(
        path,
        json={"url": receiver.url("/other"), "events": ["message.failed"], "enabled": False},
        headers=api.headers(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["url"] == receiver.url("/other")
    assert body["events"] == ["message.failed"]
    assert body["enabled"] is False
    assert body["disabledReason"] == "manual"
    response = await api.client.patch(path, json={"enabled": True}, headers=api.headers())
    assert response.json()["enabled"] is True
    assert response.json()["disabledReason"] is None
    assert (await api.client.delete(path, headers=api.headers())).status_code == 204
    assert (await api.client.get(path, headers=api.headers())).status_code == 404
    assert (await api.client.delete(path, headers=api.headers())).status_code == 404
    actions = api.runtime.db.read(
        lambda conn: list(
            conn.execute(
                sa.select(audit_log.c.action).where(audit_log.c.target == created["id"])
            ).scalars()
        )
    )
    assert actions == [
        "webhook.endpoint_created",
        "webhook.endpoint_updated",
        "webhook.endpoint_updated",
        "webhook.endpoint_deleted",
    ]


async def test_disabled_endpoints_get_no_deliveries(api: Any, receiver: Receiver) -> None:
    created = await create_endpoint(api, receiver.url())
    await api.client.patch(
        f"/api/v1/webhooks/{created['id']}", json={"enabled": False}, headers=api.headers()
    )
    await api.send()
    await api.drain()
    assert receiver.hits_for() == []


async def test_another_accounts_endpoint_is_not_found(api: Any, receiver: Receiver) -> None:
    created = await create_endpoint(api, receiver.url())
    _, other_key = api.new_account("other")
    for method, suffix in [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/rotate-secret"),
        ("GET", "/deliveries"),
    ]:
        response = await api.client.request(
            method,
            f"/api/v1/webhooks/{created['id']}{suffix}",
            json={} if method in ("PATCH", "POST") else None,
            headers=api.headers(other_key),
        )
        assert response.status_code == 404, (method, suffix)
    listed = await api.client.get("/api/v1/webhooks", headers=api.headers(other_key))
    assert listed.json() == {"webhooks": []}


async def test_webhooks_manage_scope_is_required(api: Any, receiver: Receiver) -> None:
    reader = api.new_key(scopes=["messages:read"])
    for method, path in [
        ("GET", "/api/v1/webhooks"),
        ("POST", "/api/v1/webhooks"),
        ("POST", "/api/v1/account/webhook-secret"),
    ]:
        response = await api.client.request(
            method, path, json={"url": receiver.url()}, headers=api.headers(reader)
        )
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "forbidden"
    response = await api.client.get("/api/v1/webhooks")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": 5},
        {"url": "not a url"},
        {"url": "https://"},
        {"url": "https://user:pw@example.com/x"},
        {"url": "https://example.com/" + "a" * 3000},
        {"url": "https://127.0.0.1/x", "events": "message.sent"},
        {"url": "https://127.0.0.1/x", "description": "d" * 501},
        {"url": "https://127.0.0.1/x", "extra": True},
    ],
)
async def test_bad_input_is_a_400_in_the_contract_format(api: Any, body: dict[str, Any]) -> None:
    response = await api.client.post("/api/v1/webhooks", json=body, headers=api.headers())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] in {"invalid_request", "insecure_callback_url"}
    assert response.json()["meta"]["requestId"]


async def test_bad_rotate_and_delivery_parameters_are_400(api: Any, receiver: Receiver) -> None:
    created = await create_endpoint(api, receiver.url())
    path = f"/api/v1/webhooks/{created['id']}"
    for body in ({"graceHours": -1}, {"graceHours": 10_000}, {"graceHours": "soon"}):
        response = await api.client.post(f"{path}/rotate-secret", json=body, headers=api.headers())
        assert response.status_code == 400, body
    for params in ({"limit": 0}, {"limit": 1000}, {"status": "exploded"}):
        response = await api.client.get(f"{path}/deliveries", params=params, headers=api.headers())
        assert response.status_code == 400, params
    response = await api.client.patch(path, json={"enabled": "yes"}, headers=api.headers())
    assert response.status_code == 400


async def test_replay_sends_the_same_event_again(api: Any, receiver: Receiver) -> None:
    created = await create_endpoint(api, receiver.url(), events=["message.sent"])
    await api.send()
    await api.drain()
    [first] = receiver.hits_for()
    path = f"/api/v1/webhooks/{created['id']}/deliveries"
    [delivery] = (await api.client.get(path, headers=api.headers())).json()["deliveries"]
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 1
    assert delivery["attemptLog"][0]["statusCode"] == 200
    response = await api.client.post(f"{path}/{delivery['id']}/replay", headers=api.headers())
    assert response.status_code == 202, response.text
    assert response.json()["eventId"] == delivery["eventId"]
    assert response.json()["id"] != delivery["id"]
    await api.drain()
    second = receiver.hits_for()[1]
    assert second.body == first.body
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert standard_verifies(created["secret"], second)
    missing = await api.client.post(f"{path}/whd_nope/replay", headers=api.headers())
    assert missing.status_code == 404
