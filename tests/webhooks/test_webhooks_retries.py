"""Durable delivery: retries with backoff, timeouts, 410, 429 Retry-After, exhaustion and the
five-day automatic disabling."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from webhooks_helpers import create_endpoint, deliveries, security_entries, standard_verifies

from msgine.server.storage._tables import audit_log, webhook_deliveries
from webhook_receiver import Receiver, Reply


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _endpoint(api: Any, receiver: Receiver) -> dict[str, Any]:
    return await create_endpoint(api, receiver.url(), events=["message.sent"])


async def test_fails_twice_then_succeeds_in_three_attempts_with_one_event_id(
    api: Any, receiver: Receiver
) -> None:
    receiver.script("/hook", Reply(500), Reply(503))
    endpoint = await _endpoint(api, receiver)
    await api.send()
    await api.drain()
    [delivery] = await deliveries(api, endpoint["id"])
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == 1
    # Measured from the attempt, not from now: a loaded machine may take seconds to get here.
    # The schedule's first step is 5 s with up to +20% jitter, counted once the reply is in.
    [attempt] = delivery["attemptLog"]
    wait = _at(delivery["nextAttemptAt"]) - _at(attempt["at"])
    replied = timedelta(milliseconds=attempt["latencyMs"] or 0)
    assert timedelta(seconds=5) <= wait <= timedelta(seconds=6) + replied + timedelta(seconds=1)
    await api.drain()
    assert len(receiver.hits_for()) == 1  # nothing is due before the backoff ends
    api.runtime.clock.advance(seconds=7)
    await api.drain()
    api.runtime.clock.advance(seconds=400)  # second step: 300 s
    await api.drain()
    hits = receiver.hits_for()
    assert len(hits) == 3
    assert len({hit.headers["webhook-id"] for hit in hits}) == 1
    assert all(standard_verifies(endpoint["secret"], hit) for hit in hits)
    [delivery] = await deliveries(api, endpoint["id"])
    assert delivery["status"] == "succeeded"
    assert [a["statusCode"] for a in delivery["attemptLog"]] == [500, 503, 200]
    assert delivery["nextAttemptAt"] is None


async def test_a_receiver_that_times_out_is_retried(api: Any, receiver: Receiver) -> None:
    receiver.script("/hook", Reply(delay=3))  # the test settings give receivers 1 s
    endpoint = await _endpoint(api, receiver)
    await api.send()
    await api.drain()
    [delivery] = await deliveries(api, endpoint["id"])
    assert delivery["status"] == "pending"
    assert delivery["attemptLog"][0]["error"] == "connection_failed"  # the cause: operator log
    api.runtime.clock.advance(seconds=7)
    await api.drain()
    hits = receiver.hits_for()
    assert len(hits) == 2
    assert hits[0].headers["webhook-id"] == hits[1].headers["webhook-id"]
    [delivery] = await deliveries(api, endpoint["id"])
    assert delivery["status"] == "succeeded"


async def test_gone_disables_the_endpoint_with_audit_and_security_log(
    api: Any, receiver: Receiver, security_log: Path
) -> None:
    receiver.script("/hook", Reply(410))
    endpoint = await create_endpoint(api, receiver.url())
    await api.send()
    await api.drain()
    assert len(receiver.hits_for()) == 1  # message.delivered was never sent after the 410
    view = (
        await api.client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=api.headers())
    ).json()
    assert view["enabled"] is False
    assert view["disabledReason"] == "gone"
    statuses = sorted(d["status"] for d in await deliveries(api, endpoint["id"]))
    assert "pending" not in statuses
    assert "failed" in statuses
    assert _audit_actions(api, endpoint["id"])[-1] == "webhook.endpoint_disabled"
    [entry] = security_entries(security_log, "webhook_endpoint_disabled")
    assert entry["reason"] == "gone"
    assert entry["endpoint_id"] == endpoint["id"]


async def test_429_retry_after_is_honoured(api: Any, receiver: Receiver) -> None:
    receiver.script("/hook", Reply(429, {"Retry-After": "120"}))
    endpoint = await _endpoint(api, receiver)
    await api.send()
    await api.drain()
    [delivery] = await deliveries(api, endpoint["id"])
    assert delivery["lastStatusCode"] == 429
    [attempt] = delivery["attemptLog"]
    assert _at(delivery["nextAttemptAt"]) - _at(attempt["at"]) >= timedelta(seconds=120)
    api.runtime.clock.advance(seconds=10)  # the schedule alone would retry by now
    await api.drain()
    assert len(receiver.hits_for()) == 1
    api.runtime.clock.advance(seconds=115)
    await api.drain()
    assert len(receiver.hits_for()) == 2


async def test_delivery_fails_when_the_schedule_is_exhausted(
    api: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.runtime.settings, "webhook_retry_schedule", "1,1")
    receiver.script("/hook", *[Reply(500)] * 5)
    endpoint = await _endpoint(api, receiver)
    await api.send()
    for _ in range(4):
        await api.drain()
        api.runtime.clock.advance(seconds=2)
    assert len(receiver.hits_for()) == 3
    [delivery] = await deliveries(api, endpoint["id"])
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 3
    assert delivery["completedAt"] is not None


async def test_five_days_of_failures_disable_the_endpoint(
    api: Any, receiver: Receiver, security_log: Path
) -> None:
    receiver.script("/hook", *[Reply(500)] * 50)
    endpoint = await _endpoint(api, receiver)
    await api.send()
    await api.drain()
    api.runtime.clock.advance(days=4, hours=23)
    await api.send()
    await api.drain()
    view = (
        await api.client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=api.headers())
    ).json()
    assert view["enabled"] is True
    assert view["failingSince"] is not None
    api.runtime.clock.advance(hours=2)
    await api.send()
    await api.drain()
    view = (
        await api.client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=api.headers())
    ).json()
    assert view["enabled"] is False
    assert view["disabledReason"] == "failing"
    assert _audit_actions(api, endpoint["id"])[-1] == "webhook.endpoint_disabled"
    [entry] = security_entries(security_log, "webhook_endpoint_disabled")
    assert entry["reason"] == "failing"
    pending = api.runtime.db.read(
        lambda conn: conn.execute(
            sa.select(sa.func.count()).where(webhook_deliveries.c.status == "pending")
        ).scalar_one()
    )
    assert pending == 0
    # re-enabling starts a fresh streak
    response = await api.client.patch(
        f"/api/v1/webhooks/{endpoint['id']}", json={"enabled": True}, headers=api.headers()
    )
    assert response.json()["failingSince"] is None


async def test_a_success_resets_the_failure_streak(api: Any, receiver: Receiver) -> None:
    receiver.script("/hook", Reply(500), Reply(500), Reply(200), *[Reply(500)] * 10)
    endpoint = await _endpoint(api, receiver)
    await api.send()
    await api.drain()
    api.runtime.clock.advance(days=3)
    await api.drain()  # retry fails
    await api.send()
    await api.drain()  # new event succeeds
    api.runtime.clock.advance(days=3)
    await api.send()
    await api.drain()
    view = (
        await api.client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=api.headers())
    ).json()
    assert view["enabled"] is True
    assert view["lastSuccessAt"] is not None


def _audit_actions(api: Any, target: str) -> list[str]:
    return api.runtime.db.read(  # type: ignore[no-any-return]
        lambda conn: list(
            conn.execute(
                sa.select(audit_log.c.action)
                .where(audit_log.c.target == target)
                .order_by(audit_log.c.seq)
            ).scalars()
        )
    )
