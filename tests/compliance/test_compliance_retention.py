"""Retention: personal data past each account's limit is purged; counts and statuses stay."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from compliance_helpers import OTHER, PHONE

from msgine.server.compliance._privacy import erase_subject
from msgine.server.compliance._retention import (
    background_tasks,
    preview_purge,
    purge_account,
    retention_loop,
    run_purge,
)
from msgine.server.storage._tables import audit_log, events, inbound_messages, messages
from support import sqlite_plan

pytestmark = pytest.mark.usefixtures("every_event_stored")  # which events, not who gets them


async def _old_and_young(api: Any, comp: Any, clock: Any) -> tuple[str, str]:
    """A message and an inbound 31 days old, and another pair 11 days old."""
    old = (await api.send(to=PHONE, message="Old text")).json()["id"]
    await comp.inbound("old reply")
    await api.drain()
    clock.advance(days=20)
    young = (await api.send(to=OTHER, message="Young text")).json()["id"]
    await comp.inbound("young reply", phone=OTHER)
    await api.drain()
    clock.advance(days=11)
    return old, young


async def test_a_preview_counts_exactly_what_the_purge_then_removes(
    api: Any, comp: Any, clock: Any
) -> None:
    await _old_and_young(api, comp, clock)
    before = comp.rows(messages)
    for days in (None, 5):
        preview = preview_purge(api.runtime, older_than_days=days)
        assert comp.rows(messages) == before  # counting changed nothing
        assert sum(preview[api.account_id].values()) > 0
        assert run_purge(api.runtime, older_than_days=days) == preview
        before = comp.rows(messages)
    assert sum(preview_purge(api.runtime, older_than_days=0)[api.account_id].values()) == 0


async def test_purges_what_is_older_than_the_limit_and_nothing_younger(
    api: Any, comp: Any, clock: Any
) -> None:
    old, young = await _old_and_young(api, comp, clock)
    results = run_purge(api.runtime)
    counts = results[api.account_id]
    assert (counts["messages"], counts["recipients"], counts["inboundMessages"]) == (1, 1, 1)
    assert counts["events"] >= 2  # message.sent and message.delivered, at least

    purged = await comp.message(old)
    assert (purged["content"], purged["to"]) == (None, [None])
    assert (purged["status"], purged["segments"], purged["cost"]) == ("delivered", 1, 30)
    kept = await comp.message(young)
    assert (kept["content"], kept["to"]) == ("Young text", [OTHER])

    inbound = sorted(comp.rows(inbound_messages), key=lambda r: r["received_at"])
    assert (inbound[0]["body"], inbound[0]["phone"]) == (None, None)
    assert inbound[0]["purged_at"] is not None
    assert inbound[1]["body"] is not None

    old_events = comp.rows(events, events.c.message_id == old)
    assert old_events
    assert all(e["body"] is None for e in old_events)
    assert all(e["body"] is not None for e in comp.rows(events, events.c.message_id == young))

    # Nothing links the purged rows to the number any more.
    export = (
        await api.client.get(
            "/api/v1/privacy/export", params={"phone": PHONE}, headers=api.headers()
        )
    ).json()
    assert export["messages"] == []
    assert export["inboundMessages"] == []
    # A second run finds nothing more.
    assert sum(run_purge(api.runtime)[api.account_id].values()) == 0


async def test_each_account_uses_its_own_period(api: Any, comp: Any, clock: Any) -> None:
    await api.client.patch(
        "/api/v1/account/policy", json={"retentionDays": 5}, headers=api.headers()
    )
    _, other_key = api.new_account("other")
    mine = (await api.send(to=PHONE)).json()["id"]
    theirs = (await api.send(key=other_key, to=PHONE)).json()["id"]
    await api.drain()
    clock.advance(days=6)
    run_purge(api.runtime)
    assert (await comp.message(mine))["content"] is None
    got = await api.client.get(f"/api/v1/messages/{theirs}", headers=api.headers(other_key))
    assert got.json()["content"] is not None  # default 30 days


async def test_older_than_days_overrides_every_account(api: Any, comp: Any, clock: Any) -> None:
    sent = (await api.send(to=PHONE)).json()["id"]
    await api.drain()
    clock.advance(days=3)
    assert run_purge(api.runtime, older_than_days=4)[api.account_id]["messages"] == 0
    assert run_purge(api.runtime, older_than_days=2)[api.account_id]["messages"] == 1
    assert (await comp.message(sent))["content"] is None


async def test_a_message_still_waiting_is_never_purged(api: Any, comp: Any, clock: Any) -> None:
    when = clock() + timedelta(days=3)
    waiting = (await api.send(to=PHONE, scheduledFor=when.isoformat())).json()["id"]
    clock.advance(days=2)
    run_purge(api.runtime, older_than_days=1)
    assert (await comp.message(waiting))["content"] is not None
    clock.advance(days=2)
    await api.drain()
    assert (await comp.message(waiting))["status"] == "delivered"


async def test_a_payload_waits_for_a_retrying_delivery_within_a_grace(
    api: Any, comp: Any, clock: Any
) -> None:
    hook = await api.client.post(
        "/api/v1/webhooks", json={"url": "https://127.0.0.1:9/hooks"}, headers=api.headers()
    )
    assert hook.status_code == 201
    await comp.inbound("STOP")  # contact.opted_out, delivery pending (never drained)
    clock.advance(days=31)
    run_purge(api.runtime)
    opted = comp.rows(events, events.c.type == "contact.opted_out")[0]
    assert opted["body"] is not None
    clock.advance(days=8)
    run_purge(api.runtime)
    assert comp.rows(events, events.c.type == "contact.opted_out")[0]["body"] is None


async def test_each_purge_is_audited_with_counts_only(api: Any, comp: Any, clock: Any) -> None:
    await _old_and_young(api, comp, clock)
    run_purge(api.runtime)
    run_purge(api.runtime)  # nothing to purge: no entry
    entries = comp.rows(audit_log, audit_log.c.action == "retention.purged")
    assert len(entries) == 1
    assert entries[0]["actor"] == "system:retention"
    assert entries[0]["details"]["messages"] == 1
    assert PHONE not in json.dumps(entries, default=str)


async def test_the_worker_runs_the_retention_loop(api: Any, comp: Any, clock: Any) -> None:
    assert retention_loop in background_tasks(api.runtime)
    sent = (await api.send(to=PHONE)).json()["id"]
    await api.drain()
    clock.advance(days=31)
    stop = asyncio.Event()
    stop.set()  # one pass, then return
    await retention_loop(api.runtime, stop)
    assert comp.rows(messages, messages.c.id == sent)[0]["purged_at"] is not None


# Tables that keep a row for every message, event and delivery ever made.
HISTORY = {
    "messages",
    "recipients",
    "status_events",
    "events",
    "webhook_deliveries",
    "webhook_attempts",
    "inbound_messages",
    "idempotency_keys",
}


def _traced(statements: list[str], fn: Callable[[sa.Connection], Any]) -> Any:
    def run(conn: sa.Connection) -> Any:
        driver = conn.connection.driver_connection
        driver.set_trace_callback(statements.append)
        try:
            return fn(conn)
        finally:
            driver.set_trace_callback(None)

    return run


def _plans(runtime: Any, statements: list[str]) -> dict[str, list[str]]:
    dml = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))]
    return {sql: sqlite_plan(runtime, sql) for sql in dml}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_purges_and_erasures_read_only_what_they_change(
    api: Any, comp: Any, clock: Any
) -> None:
    """Retention runs every hour, in one write transaction per account: on SQLite it holds the
    write lock, so no message is accepted meanwhile. It must read the rows it purges, not every
    row the account ever had (purged rows stay, without personal data); an erasure likewise.
    Checked on SQLite's query plans: no history table is scanned, and the purge reaches its
    rows through the indexes of rows not yet purged."""
    await _old_and_young(api, comp, clock)
    runtime = api.runtime
    statements: list[str] = []
    runtime.db.write(
        _traced(statements, lambda conn: purge_account(conn, api.account_id, now=runtime.now()))
    )
    purge_plans = _plans(runtime, statements)
    statements.clear()
    runtime.db.write(
        _traced(
            statements,
            lambda conn: erase_subject(conn, runtime.vault, api.account_id, OTHER, runtime.now()),
        )
    )
    plans = {**purge_plans, **_plans(runtime, statements)}
    assert plans
    scans = {
        sql: steps
        for sql, steps in plans.items()
        for step in steps
        if step.startswith("SCAN ") and step.split()[1] in HISTORY
    }
    assert scans == {}
    used = " ".join(step for steps in purge_plans.values() for step in steps)
    for index in ("ix_messages_unpurged", "ix_events_unpurged", "ix_inbound_unpurged"):
        assert index in used
