"""The send path through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

CONTRACT_FIELDS = {
    "id",
    "sid",
    "channel",
    "to",
    "from",
    "content",
    "status",
    "cost",
    "currency",
    "segments",
    "encoding",
    "createdAt",
    "recipients",
}


async def test_documented_curl_form_reaches_delivered(api: Any) -> None:
    response = await api.client.post(
        "/api/v1/messages/sms",
        json={"to": "+256701521269", "message": "Your code is 123456", "from": "MyApp"},
        headers={"Authorization": f"Bearer {api.key}"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= CONTRACT_FIELDS
    assert body["id"].startswith("msg_")
    assert body["channel"] == "sms"
    assert body["to"] == ["+256701521269"]
    assert body["from"] == "MyApp"
    assert body["status"] == "queued"
    assert body["encoding"] == "GSM-7"
    assert body["segments"] == 1
    assert body["cost"] == 30 and body["currency"] == "UGX"
    assert response.headers["x-request-id"]
    await api.drain()
    got = await api.client.get(f"/api/v1/messages/{body['id']}", headers=api.headers())
    assert got.status_code == 200
    assert got.json()["status"] == "delivered"
    assert got.json()["recipients"][0]["status"] == "delivered"


async def test_official_sdk_form_with_comma_separated_to(api: Any) -> None:
    response = await api.client.post(
        "/api/v1/developers/sms",
        json={"to": "+256701521269, +256701521999", "message": "Hi"},
        headers={"X-Api-Key": api.key},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["to"] == ["+256701521269", "+256701521999"]
    assert len(body["recipients"]) == 2
    assert body["cost"] == 60
    await api.drain()
    got = await api.client.get(
        f"/api/v1/developers/{body['id']}", headers={"Authorization": api.key}
    )
    statuses = {r["to"]: r["status"] for r in got.json()["recipients"]}
    assert statuses == {"+256701521269": "delivered", "+256701521999": "failed"}
    failed = next(r for r in got.json()["recipients"] if r["status"] == "failed")
    assert failed["errorCode"] == "undeliverable"
    history = await api.client.get(
        "/api/v1/developers/sms/history?page=1&limit=5", headers=api.headers()
    )
    assert history.status_code == 200
    assert history.json()["total"] == 1
    assert history.json()["messages"][0]["id"] == body["id"]


async def test_send_paths_are_dispatched_directly_and_keep_their_metrics(api: Any) -> None:
    """The send paths skip the framework's router (DirectRoutes) yet are still measured under
    their route, answer errors in the contract's format, and other methods still get 405."""
    assert (await api.send()).status_code == 201
    bad = await api.client.post(
        "/api/v1/developers/sms", content=b"{", headers={**api.headers(), "X-Request-Id": "r-1"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_request"
    assert bad.json()["meta"]["requestId"] == "r-1"
    wrong_method = await api.client.delete("/api/v1/messages/sms", headers=api.headers())
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    metrics = (await api.client.get("/metrics")).text
    assert 'route="/messages/sms",status="201"' in metrics
    assert 'route="/developers/sms",status="400"' in metrics
