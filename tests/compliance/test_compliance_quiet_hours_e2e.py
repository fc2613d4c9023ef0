"""Quiet hours through the API and the worker, with the clock injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from compliance_helpers import PHONE

from msgine.server.storage._tables import jobs, recipients

LATE_EVENING = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)  # 23:00 in Kampala (UTC+3)
OPENS = datetime(2026, 3, 11, 5, 0, tzinfo=UTC)  # 08:00 in Kampala


def _due_at(comp: Any, message_id: str) -> datetime:
    rid = comp.rows(recipients, recipients.c.message_id == message_id)[0]["id"]
    return comp.rows(jobs, jobs.c.ref == rid)[0]["due_at"]


async def test_marketing_at_23_local_waits_for_08_and_goes_then(
    api: Any, comp: Any, clock: Any
) -> None:
    clock.freeze(LATE_EVENING)
    await comp.consent(PHONE)
    body = (await api.send(to=PHONE, message="Sale", type="marketing")).json()
    assert body["status"] == "scheduled"
    assert body["recipients"][0]["status"] == "scheduled"
    assert _due_at(comp, body["id"]) == OPENS

    clock.freeze(OPENS - timedelta(minutes=1))
    await api.drain()
    assert (await comp.message(body["id"]))["status"] == "scheduled"

    clock.freeze(OPENS)
    await api.drain()
    message = await comp.message(body["id"])
    assert message["status"] == "delivered"


async def test_transactional_at_23_local_goes_at_once(api: Any, comp: Any, clock: Any) -> None:
    clock.freeze(LATE_EVENING)
    body = (await api.send(to=PHONE, message="Your code is 1234")).json()
    assert body["status"] == "queued"
    await api.drain()
    assert (await comp.message(body["id"]))["status"] == "delivered"


async def test_account_may_reject_instead_of_defer(api: Any, comp: Any, clock: Any) -> None:
    clock.freeze(LATE_EVENING)
    await api.client.patch(
        "/api/v1/account/policy", json={"quietHoursPolicy": "reject"}, headers=api.headers()
    )
    await comp.consent(PHONE)
    body = (await api.send(to=PHONE, message="Sale", type="marketing")).json()
    recipient = body["recipients"][0]
    assert (recipient["status"], recipient["errorCode"]) == ("rejected", "quiet_hours")


async def test_account_window_is_used(api: Any, comp: Any, clock: Any) -> None:
    clock.freeze(LATE_EVENING)  # 23:00 local: inside a 10:00-23:30 window
    await api.client.patch(
        "/api/v1/account/policy",
        json={"quietHoursStart": "10:00", "quietHoursEnd": "23:30"},
        headers=api.headers(),
    )
    await comp.consent(PHONE)
    body = (await api.send(to=PHONE, message="Sale", type="marketing")).json()
    assert body["status"] == "queued"
    clock.freeze(LATE_EVENING + timedelta(hours=1))  # 00:00 local: outside; opens at 10:00
    body = (await api.send(to=PHONE, message="Sale", type="marketing")).json()
    assert body["status"] == "scheduled"
    assert _due_at(comp, body["id"]) == OPENS + timedelta(hours=2)


async def test_quiet_hours_rechecked_when_a_scheduled_message_goes_out(
    api: Any, comp: Any, clock: Any
) -> None:
    """A marketing message scheduled by the client for 22:30 local waits for 08:00."""
    clock.freeze(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))  # 15:00 local
    await comp.consent(PHONE)
    when = datetime(2026, 3, 10, 19, 30, tzinfo=UTC)  # 22:30 local
    body = (
        await api.send(to=PHONE, message="Sale", type="marketing", scheduledFor=when.isoformat())
    ).json()
    assert _due_at(comp, body["id"]) == OPENS
    # Even if the job were due earlier, the worker re-checks and defers again.
    rid = comp.rows(recipients, recipients.c.message_id == body["id"])[0]["id"]
    api.runtime.db.write(
        lambda conn: conn.execute(jobs.update().where(jobs.c.ref == rid).values(due_at=when))
    )
    clock.freeze(when)
    await api.drain()
    assert _due_at(comp, body["id"]) == OPENS
    assert (await comp.message(body["id"]))["status"] == "scheduled"
    clock.freeze(OPENS)
    await api.drain()
    assert (await comp.message(body["id"]))["status"] == "delivered"


async def test_unknown_zone_number_uses_account_zone(api: Any, comp: Any, clock: Any) -> None:
    """A non-geographic number (+800, no zone data) is judged in the account's zone."""
    number = "+80012345678"
    await api.client.patch(
        "/api/v1/account/policy",
        json={"timezone": "Asia/Tokyo", "marketingRequiresConsent": False},
        headers=api.headers(),
    )
    clock.freeze(datetime(2026, 3, 10, 14, 0, tzinfo=UTC))  # 23:00 in Tokyo, 14:00 UTC
    body = (await api.send(to=number, message="Sale", type="marketing")).json()
    assert body["status"] == "scheduled"
    assert _due_at(comp, body["id"]) == datetime(2026, 3, 10, 23, 0, tzinfo=UTC)  # 08:00 Tokyo
