"""Idempotent sends (24 h, durable) and scheduled sends."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from msgine.server.storage._tables import messages, simulator_submissions


def _count(api: Any, table: sa.Table) -> int:
    return int(
        api.runtime.db.read(
            lambda c: c.execute(sa.select(sa.func.count()).select_from(table)).scalar()
        )
    )


async def test_same_key_same_body_returns_first_response_and_sends_once(api: Any) -> None:
    headers = {**api.headers(), "Idempotency-Key": "order-42"}
    body = {"to": "+256701521269", "message": "Your order shipped"}
    first = await api.client.post("/api/v1/messages/sms", json=body, headers=headers)
    await api.drain()
    again = await api.client.post("/api/v1/messages/sms", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert _count(api, messages) == 1
    await api.drain()
    assert _count(api, simulator_submissions) == 1


async def test_body_key_works_like_the_header(api: Any) -> None:
    body = {"to": "+256701521269", "message": "Hi", "idempotencyKey": "k-1"}
    first = await api.client.post("/api/v1/messages/sms", json=body, headers=api.headers())
    again = await api.client.post("/api/v1/messages/sms", json=body, headers=api.headers())
    assert again.json()["id"] == first.json()["id"]


async def test_same_key_other_body_is_409(api: Any) -> None:
    headers = {**api.headers(), "Idempotency-Key": "k-2"}
    await api.client.post(
        "/api/v1/messages/sms", json={"to": "+256701521269", "message": "A"}, headers=headers
    )
    other = await api.client.post(
        "/api/v1/messages/sms", json={"to": "+256701521269", "message": "B"}, headers=headers
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert _count(api, messages) == 1


async def test_concurrent_duplicates_store_one_message(api: Any) -> None:
    headers = {**api.headers(), "Idempotency-Key": "burst"}
    body = {"to": "+256701521269", "message": "once"}
    responses = await asyncio.gather(
        *(api.client.post("/api/v1/messages/sms", json=body, headers=headers) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert _count(api, messages) == 1


async def test_keys_are_per_account(api: Any) -> None:
    _, other_key = api.new_account()
    body = {"to": "+256701521269", "message": "same", "idempotencyKey": "shared"}
    a = await api.client.post("/api/v1/messages/sms", json=body, headers=api.headers())
    b = await api.client.post("/api/v1/messages/sms", json=body, headers=api.headers(other_key))
    assert a.json()["id"] != b.json()["id"]


async def test_key_expires_after_24_hours(api: Any, clock: Any) -> None:
    body = {"to": "+256701521269", "message": "daily", "idempotencyKey": "day"}
    first = await api.client.post("/api/v1/messages/sms", json=body, headers=api.headers())
    clock.advance(hours=24, seconds=1)
    later = await api.client.post("/api/v1/messages/sms", json=body, headers=api.headers())
    assert later.json()["id"] != first.json()["id"]


async def test_scheduled_message_waits_until_due(api: Any, clock: Any) -> None:
    when = api.runtime.now() + timedelta(hours=3)
    response = await api.send(scheduledFor=when.isoformat())
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["scheduledFor"].startswith(when.strftime("%Y-%m-%dT%H:%M"))
    await api.drain()
    got = await api.client.get(f"/api/v1/messages/{body['id']}", headers=api.headers())
    assert got.json()["status"] == "scheduled"
    assert _count(api, simulator_submissions) == 0
    clock.advance(hours=3, seconds=1)
    await api.drain()
    got = await api.client.get(f"/api/v1/messages/{body['id']}", headers=api.headers())
    assert got.json()["status"] == "delivered"


async def test_history_is_newest_first_and_paged(api: Any, clock: Any) -> None:
    ids = []
    for n in range(5):
        ids.append((await api.send(message=f"n{n}")).json()["id"])
        clock.advance(seconds=1)
    page1 = (await api.client.get("/api/v1/messages?page=1&limit=2", headers=api.headers())).json()
    page3 = (await api.client.get("/api/v1/messages?page=3&limit=2", headers=api.headers())).json()
    assert [m["id"] for m in page1["messages"]] == ids[::-1][:2]
    assert [m["id"] for m in page3["messages"]] == [ids[0]]
    assert page1["total"] == 5 and page1["pages"] == 3
    await api.drain()
    delivered = await api.client.get("/api/v1/messages?status=delivered", headers=api.headers())
    assert delivered.json()["total"] == 5
