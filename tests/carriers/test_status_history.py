"""The status timeline is the same as when every step was a ``status_events`` row, while only
the steps the recipient row cannot tell are stored.

Each scenario runs with every row stored (as before revision 0013), noting the rows the new
rule skips; the timeline of the full rows (read as they were read before) must equal the one
rebuilt after deleting the skipped rows, field for field and in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from carriers_helpers import KE, UG, Operator, recipient

from msgine.server.carriers import Receipt
from msgine.server.messages import _history, _service
from msgine.server.storage._tables import messages, status_events

Scenario = Callable[[Any, Operator], Awaitable[str]]


def live_key(api: Any) -> str:
    return str(api.new_key(mode="live", name="prod"))


async def _receipt(api: Any, carrier: str, receipt: Receipt) -> None:
    await api.worker.fleet.get(carrier).events.receipt(carrier, receipt)


async def simulated(api: Any, operator: Operator) -> str:
    sent = await api.send(to=[UG, "+256701521999"])  # the simulator fails numbers ending 999
    await api.drain()
    return str(sent.json()["id"])


async def rejected_at_acceptance(api: Any, operator: Operator) -> str:
    stop = await api.client.post(
        "/api/v1/simulator/inbound",
        json={"from": UG, "to": "+256700000001", "message": "STOP"},
        headers=api.headers(),
    )
    assert stop.status_code == 201, stop.text
    sent = await api.send(to=[UG, KE])
    assert sent.status_code == 201, sent.text
    await api.drain()
    return str(sent.json()["id"])


async def scheduled(api: Any, operator: Operator) -> str:
    when = api.runtime.now() + timedelta(hours=2)
    sent = await api.send(to=UG, scheduledFor=when.isoformat())
    api.runtime.clock.advance(hours=3)
    await api.drain()
    return str(sent.json()["id"])


async def failover_and_receipt(api: Any, operator: Operator) -> str:
    operator.add_carrier("first", behaviour="failover", detail="ESME_RINVDSTADR")
    operator.add_carrier("second")
    operator.add_route(["first", "second"])
    sent = await api.send(live_key(api))
    await api.drain()
    row = recipient(api.runtime, sent.json()["id"])
    await _receipt(api, "second", Receipt(row["carrier_message_id"], "delivered", "DELIVRD"))
    await api.worker.fleet.stop_all()
    return str(sent.json()["id"])


async def down_then_failed_receipt(api: Any, operator: Operator) -> str:
    operator.add_carrier("first", down=True)
    operator.add_carrier("second")
    operator.add_route(["first", "second"])
    sent = await api.send(live_key(api))
    await api.drain()
    row = recipient(api.runtime, sent.json()["id"])
    failed = Receipt(row["carrier_message_id"], "failed", "UNDELIV", "undeliverable")
    await _receipt(api, "second", failed)
    await api.worker.fleet.stop_all()
    return str(sent.json()["id"])


async def refused_for_good(api: Any, operator: Operator) -> str:
    operator.add_carrier("only", behaviour="fail", detail="ESME_RINVDSTADR")
    operator.add_route(["only"])
    sent = await api.send(live_key(api))
    await api.drain()
    return str(sent.json()["id"])


async def uncertain_then_receipt(api: Any, operator: Operator) -> str:
    operator.add_carrier("mtn", behaviour="raise")
    operator.add_route(["mtn"])
    sent = await api.send(live_key(api))
    await api.drain()
    await _receipt(api, "mtn", Receipt("smsc-77", "delivered", "DELIVRD", to=UG))
    await api.worker.fleet.stop_all()
    return str(sent.json()["id"])


async def resubmitted(api: Any, operator: Operator) -> str:
    operator.add_carrier("mtn", behaviour="raise", on_uncertain_submit="resubmit")
    operator.add_route(["mtn"])
    sent = await api.send(live_key(api))
    await api.worker.run_once()
    operator.update_carrier("mtn", options={"behaviour": "accept"})
    api.runtime.db.write(lambda c: c.exec_driver_sql("UPDATE jobs SET due_at = created_at"))
    await api.drain()
    await api.worker.fleet.stop_all()
    return str(sent.json()["id"])


async def receipt_before_the_submits_record(api: Any, operator: Operator) -> str:
    import carrier_stub

    operator.add_carrier("mtn")
    operator.add_route(["mtn"])
    sent = await api.send(live_key(api))
    rid = recipient(api.runtime, sent.json()["id"])["id"]
    await api.worker.fleet.refresh()
    early = Receipt(carrier_stub.carrier_id(rid), "delivered", "DELIVRD")
    await _receipt(api, "mtn", early)
    await api.drain()
    await api.worker.fleet.stop_all()
    return str(sent.json()["id"])


SCENARIOS: list[Scenario] = [
    simulated,
    rejected_at_acceptance,
    scheduled,
    failover_and_receipt,
    down_then_failed_receipt,
    refused_for_good,
    uncertain_then_receipt,
    resubmitted,
    receipt_before_the_submits_record,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
async def test_the_timeline_is_what_every_row_stored_gave(
    api: Any, operator: Operator, monkeypatch: pytest.MonkeyPatch, scenario: Scenario
) -> None:
    skipped: set[tuple[str, str]] = set()  # (recipient id, status) of changes the rule skips

    def change_kept(status: str, **kwargs: Any) -> bool:
        if not real_change_kept(status, **kwargs):
            skipped.add((kwargs["recipient"]["id"], status))
        return True

    real_change_kept = _history.change_kept
    monkeypatch.setattr(_history, "change_kept", change_kept)
    # Every initial row stored; the rule skips exactly the plain queued ones (dropped below).
    monkeypatch.setattr(_service, "initial_kept", lambda status, error_code: True)
    message_id = await scenario(api, operator)
    db = api.runtime.db

    def rows(conn: sa.Connection) -> list[dict[str, Any]]:
        query = (
            sa.select(status_events)
            .where(status_events.c.message_id == message_id)
            .order_by(status_events.c.occurred_at, status_events.c.id)
        )
        return [dict(row) for row in conn.execute(query).mappings()]

    every = db.read(rows)
    # Rows written before revision 0013 (every step stored) read as they did: nothing twice.
    as_stored = db.read(lambda c: _history.status_history(c, message_id))
    before = {
        rid: [s for s in every if s["recipient_id"] == rid] for rid in _recipients(api, message_id)
    }
    accepted_at = db.read(
        lambda c: c.execute(
            sa.select(messages.c.created_at).where(messages.c.id == message_id)
        ).scalar_one()
    )
    drop = [
        row["id"]
        for steps in before.values()
        for position, row in enumerate(steps)
        if (row["recipient_id"], row["status"]) in skipped
        or (
            position == 0
            and (row["status"], row["detail"], row["occurred_at"]) == ("queued", None, accepted_at)
        )
    ]
    db.write(lambda c: c.execute(sa.delete(status_events).where(status_events.c.id.in_(drop))))
    after = db.read(lambda c: _history.status_history(c, message_id))
    for timeline in (*before.values(), *after.values(), *as_stored.values()):
        for step in timeline:
            step.pop("id", None)  # the row's own number: not part of a step
    assert after == before
    assert as_stored == before
    assert drop  # every scenario has steps the recipient row tells


def _recipients(api: Any, message_id: str) -> list[str]:
    from msgine.server.storage._tables import recipients

    query = (
        sa.select(recipients.c.id)
        .where(recipients.c.message_id == message_id)
        .order_by(recipients.c.position)
    )
    return list(api.runtime.db.read(lambda c: c.execute(query).scalars().all()))
