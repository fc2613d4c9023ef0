"""Analytics: per-day counters kept with every change of a message, and the routes MsGine's
SDKs call, on SQLite and PostgreSQL.

The counters are checked against the routes' answers after real sends, deliveries and
failures, and against a recount of the messages tables written here from the documented rules
(docs/analytics.md), independent of the code that keeps them.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections import Counter
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from msgine.server.messages._history import status_history
from msgine.server.storage import daily_message_counts
from msgine.server.storage._tables import messages, recipients

OVERVIEW = "/api/v1/developers/analytics/overview"
DAILY = "/api/v1/developers/analytics/daily"
OK_1, OK_2, FAILS = "+256701521201", "+256701521202", "+256701521999"  # ...999 fails
PRICE = 30  # the test settings' price per segment (the default)


def _number(n: int) -> str:
    return f"+2567015{n:05d}"


async def _get(api: Any, path: str, key: str | None = None, **params: Any) -> dict[str, Any]:
    response = await api.client.get(path, params=params, headers=api.headers(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _send(api: Any, key: str | None = None, **body: Any) -> dict[str, Any]:
    response = await api.send(key, **body)
    assert response.status_code == 201, response.text
    sent: dict[str, Any] = response.json()
    return sent


async def _stop(api: Any, number: str) -> None:
    """The number texts STOP through the simulator: the test world opts it out."""
    response = await api.client.post(
        "/api/v1/simulator/inbound",
        json={"from": number, "message": "STOP"},
        headers=api.headers(),
    )
    assert response.status_code == 201, response.text


def _sms(body: dict[str, Any]) -> dict[str, int]:
    sms: dict[str, int] = body["channels"]["sms"]
    return sms


async def test_counters_follow_acceptance_delivery_and_failure(api: Any) -> None:
    await _stop(api, FAILS[:-3] + "555")  # opted out: rejected at acceptance, never counted
    await api.drain()  # the opt-out's confirmation is an SMS too
    before = _sms(await _get(api, OVERVIEW))
    to = [OK_1, OK_2, FAILS, FAILS[:-3] + "555"]
    sent = await _send(api, to=to)
    assert sent["recipientCounts"]["rejected"] == 1

    accepted = _sms(await _get(api, OVERVIEW))
    assert accepted["sent"] - before["sent"] == 3
    assert accepted["cost"] - before["cost"] == 3 * sent["segments"] * PRICE == sent["cost"]
    assert (accepted["delivered"], accepted["failed"]) == (before["delivered"], before["failed"])

    await api.drain()
    overview = await _get(api, OVERVIEW)
    settled = _sms(overview)
    assert settled["delivered"] - before["delivered"] == 2
    assert settled["failed"] - before["failed"] == 1
    assert overview["totals"] == {**settled, "currency": "UGX"}
    today = api.runtime.now().astimezone(UTC).date()
    assert overview["period"] == {
        "from": (today - timedelta(days=29)).isoformat(),
        "to": today.isoformat(),
    }

    daily = await _get(api, DAILY, days=7)
    assert daily["days"] == 7
    assert [p["date"] for p in daily["data"]] == [
        (today - timedelta(days=n)).isoformat() for n in range(6, -1, -1)
    ]
    assert daily["data"][-1]["sms"] == settled
    assert all(p["sms"] == dict.fromkeys(settled, 0) for p in daily["data"][:-1])
    assert all(p["email"] == {} and p["push"] == {} for p in daily["data"])


async def test_concurrent_sends_are_each_counted_once(api: Any) -> None:
    """Sends committed together (one group-commit batch) add up exactly: the batch merges its
    increments of one day into one upsert."""
    await asyncio.gather(*(_send(api, to=_number(n)) for n in range(15)))
    await _send(api, to=_number(0), idempotencyKey="same")
    await _send(api, to=_number(0), idempotencyKey="same")  # a replay: nothing new
    assert _sms(await _get(api, OVERVIEW))["sent"] == 16
    await api.drain()
    assert _sms(await _get(api, OVERVIEW))["delivered"] == 16


async def test_each_key_sees_its_own_account_and_mode_only(api: Any) -> None:
    api.runtime.settings.allow_simulator_for_live = True  # live messages without a carrier
    live = api.new_key(mode="live")
    _other_account, other = api.new_account()
    await _send(api, to=OK_1)
    await _send(api, live, to=[OK_1, OK_2])
    await _send(api, other, to=[OK_1, OK_2, _number(3), _number(4)])
    await api.drain()
    for key, count in ((None, 1), (live, 2), (other, 4)):
        totals = (await _get(api, OVERVIEW, key))["totals"]
        assert (totals["sent"], totals["delivered"]) == (count, count)
        today = (await _get(api, DAILY, key, days=1))["data"][0]["sms"]
        assert today["sent"] == count


async def test_analytics_need_the_messages_read_scope(api: Any) -> None:
    sender = api.new_key(scopes=["messages:send"])
    for path in (OVERVIEW, DAILY):
        response = await api.client.get(path, headers=api.headers(sender))
        assert response.status_code == 403
        assert response.json()["error"]["details"]["requiredScope"] == "messages:read"
        assert (await api.client.get(path)).status_code == 401


@pytest.mark.parametrize("days", ["0", "91", "-1", "abc", "1.5", ""])
async def test_days_out_of_range_or_not_a_number_are_refused(api: Any, days: str) -> None:
    response = await api.client.get(DAILY, params={"days": days}, headers=api.headers())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert "days" in str(error["details"])


async def test_days_at_their_limits_answer_every_day(api: Any) -> None:
    assert len((await _get(api, DAILY, days=90))["data"]) == 90
    assert len((await _get(api, DAILY, days=1))["data"]) == 1
    assert (await _get(api, DAILY))["days"] == 30


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-02-30"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-13-01"}, "from"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "from"),
        ({"to": "2026-03-01T25:00:00Z"}, "to"),
    ],
)
async def test_bad_dates_are_refused(api: Any, params: dict[str, str], field: str) -> None:
    response = await api.client.get(OVERVIEW, params=params, headers=api.headers())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]["field"] == field


async def test_a_period_takes_dates_or_times_as_their_utc_day(api: Any) -> None:
    body = await _get(api, OVERVIEW, **{"from": "2026-03-01T23:30:00-02:00", "to": "2026-03-05"})
    assert body["period"] == {"from": "2026-03-02", "to": "2026-03-05"}
    assert body["totals"]["sent"] == 0


async def test_a_scheduled_message_counts_on_the_day_it_is_due(api: Any) -> None:
    due = api.runtime.now() + timedelta(days=2)
    await _send(api, to=OK_1, scheduledFor=due.isoformat())
    day = due.astimezone(UTC).date().isoformat()
    assert _sms(await _get(api, OVERVIEW))["sent"] == 0  # up to today
    assert _sms(await _get(api, OVERVIEW, **{"from": day, "to": day}))["sent"] == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/developers/email"),
        ("POST", "/developers/push"),
        ("POST", "/developers/push/device"),
        ("DELETE", "/developers/push/device"),
        ("GET", "/developers/email/history"),
        ("GET", "/developers/push/history"),
        ("GET", "/developers/email"),
        ("POST", "/messages/email"),
        ("POST", "/messages/push"),
    ],
)
async def test_email_and_push_paths_answer_404_sms_only(api: Any, method: str, path: str) -> None:
    response = await api.client.request(
        method, f"/api/v1{path}", json={"to": "a@example.com"}, headers=api.headers()
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "SMS only" in error["message"]
    assert error["details"]["channels"] == ["sms"]


async def test_message_paths_still_answer_beside_the_channel_paths(api: Any) -> None:
    sent = await _send(api, to=OK_1)
    got = await api.client.get(f"/api/v1/developers/{sent['id']}", headers=api.headers())
    assert got.status_code == 200
    sms = await api.client.post(
        "/api/v1/developers/sms", json={"to": OK_2, "message": "hi"}, headers=api.headers()
    )
    assert sms.status_code == 201


# --- the counters against a recount of the messages -----------------------------------------


def _recount(conn: sa.Connection) -> dict[tuple[Any, ...], tuple[int, int, int, int]]:
    """The documented rules applied to the stored messages: each recipient whose first status
    (at acceptance) was not rejected is sent; of those, delivered ones delivered, failed or
    later rejected ones failed; cost is the message's; all on the UTC day it was due."""
    first: dict[str, str] = {}
    for (message_id,) in conn.execute(sa.select(messages.c.id)):
        for recipient_id, steps in status_history(conn, message_id).items():
            first[recipient_id] = steps[0]["status"]
    by_message = {row.id: row for row in conn.execute(sa.select(messages))}
    totals: dict[tuple[Any, ...], Counter[str]] = {}

    def key(message: Any) -> tuple[Any, ...]:
        due = (message.scheduled_for or message.created_at).astimezone(UTC).date()
        return (message.account_id, message.mode, "sms", due, message.currency)

    for r in conn.execute(sa.select(recipients.c.id, recipients.c.message_id, recipients.c.status)):
        if first[r.id] == "rejected":
            continue
        counted = totals.setdefault(key(by_message[r.message_id]), Counter())
        counted["sent"] += 1
        counted["delivered"] += r.status == "delivered"
        counted["failed"] += r.status in ("failed", "rejected")
    for message in by_message.values():
        totals.setdefault(key(message), Counter())["cost"] += message.cost
    return {
        k: (c["sent"], c["delivered"], c["failed"], c["cost"])
        for k, c in totals.items()
        if any(c.values())
    }


def _counters(conn: sa.Connection) -> dict[tuple[Any, ...], tuple[int, int, int, int]]:
    return {
        (r.account_id, r.mode, r.channel, r.day, r.currency): (
            r.sent,
            r.delivered,
            r.failed,
            r.cost,
        )
        for r in conn.execute(sa.select(daily_message_counts))
    }


async def _mixed_run(api: Any) -> None:
    api.runtime.settings.allow_simulator_for_live = True
    live = api.new_key(mode="live")
    _other_account, other = api.new_account()
    await _stop(api, _number(50))  # rejected at acceptance from now on
    queued = await _send(api, to=[_number(60), OK_1])  # _number(60) opts out before submission
    await _stop(api, _number(60))
    await _send(api, to=[OK_1, OK_2, FAILS, _number(50)], message="x" * 200)  # 2 segments
    await _send(api, live, to=[OK_1, FAILS])
    await _send(
        api, other, to=OK_2, scheduledFor=(api.runtime.now() + timedelta(days=1)).isoformat()
    )
    await _send(api, to=OK_2, idempotencyKey="once")
    await _send(api, to=OK_2, idempotencyKey="once")
    await asyncio.gather(*(_send(api, to=_number(n)) for n in range(8)))
    await api.drain()
    assert (await api.client.get(f"/api/v1/messages/{queued['id']}", headers=api.headers())).json()[
        "recipientCounts"
    ] == {"delivered": 1, "rejected": 1}


async def test_counters_equal_a_recount_of_the_messages_after_a_mixed_run(api: Any) -> None:
    await _mixed_run(api)
    counters = api.runtime.db.read(_counters)
    assert counters == api.runtime.db.read(_recount)
    assert sum(v[0] for v in counters.values()) > 10
    assert any(v[2] for v in counters.values()) and any(v[1] for v in counters.values())


def _backfill() -> sa.TextClause:
    """Migration 0009's backfill statement."""
    from msgine.server.storage._database import MIGRATIONS

    path = MIGRATIONS / "versions" / "0009_daily_message_counts.py"
    spec = importlib.util.spec_from_file_location("migration_0009", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    statement: sa.TextClause = module._BACKFILL
    return statement


async def test_the_migration_backfills_the_counters_existing_messages_would_have(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from msgine.server.messages import _service

    # The backfill runs on databases older than revision 0009, whose history has a row for
    # every status change (since 0013, a plain "queued" at acceptance has none).
    monkeypatch.setattr(_service, "initial_kept", lambda status, error_code: True)
    await _mixed_run(api)
    kept = api.runtime.db.read(_counters)

    def refill(conn: sa.Connection) -> None:
        conn.execute(sa.delete(daily_message_counts))
        conn.execute(_backfill())

    api.runtime.db.write(refill)
    assert api.runtime.db.read(_counters) == kept
    assert kept


async def test_the_sdk_reads_both_reports(api: Any) -> None:
    import httpx

    from msgine import AsyncMsGineClient, MsGineClient, MsGineValidationError

    await _send(api, to=[OK_1, FAILS])
    await api.drain()
    today = api.runtime.now().astimezone(UTC).date()
    transport = httpx.ASGITransport(app=api.app)
    base = "http://localhost/api/v1"
    async with AsyncMsGineClient(api.key, base_url=base, transport=transport) as client:
        overview = await client.analytics.overview(from_=today, to=today.isoformat())
        assert (overview.start, overview.end, overview.currency) == (today, today, "UGX")
        assert (overview.totals.sent, overview.totals.delivered) == (2, 1)
        assert overview.channels["sms"] == overview.totals
        assert overview.totals.delivery_rate == 0.5
        daily = await client.analytics.daily(days=3)
        assert [p.date for p in daily.data] == [today - timedelta(days=n) for n in (2, 1, 0)]
        assert daily.data[-1].sms.failed == 1
    with MsGineClient(api.key, base_url=base) as sync, pytest.raises(MsGineValidationError):
        sync.analytics.daily(days=91)  # refused before any request


def test_writers_in_separate_transactions_add_up(tmp_path: Path, postgres_url: str) -> None:
    """Two databases' writers (as two processes have) upsert one day's row at once on
    PostgreSQL: each increment is added, none overwrites another (ON CONFLICT DO UPDATE under
    row locks). On SQLite the one write lock serialises writers; the tests above cover it."""
    from concurrent.futures import ThreadPoolExecutor

    from msgine.server import analytics
    from msgine.server.runtime import Runtime, ensure_default_account
    from msgine.server.storage import Database
    from support import make_settings

    settings = make_settings(tmp_path, postgres_url)
    runtime = Runtime.open(settings)
    second = Database(settings.sqlalchemy_url)
    try:
        first = ensure_default_account(runtime)
        assert first is not None
        account_id, now = first.record["account_id"], runtime.now()

        def add(n: int) -> None:
            db = (runtime.db, second)[n % 2]
            db.write(
                lambda conn: analytics.count(
                    conn,
                    account_id=account_id,
                    mode="test",
                    due=now,
                    currency="UGX",
                    sent=1,
                    cost=n,
                )
            )

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(add, range(64)))
        c = daily_message_counts.c
        summed = sa.select(sa.func.sum(c.sent), sa.func.sum(c.cost))
        totals = runtime.db.read(
            lambda conn: conn.execute(summed.where(c.account_id == account_id)).one()
        )
        assert (int(totals[0]), int(totals[1])) == (64, sum(range(64)))
    finally:
        second.close()
        runtime.close()
