"""The ``africastalking`` kind against the Africa's Talking test server: every row of its answer
and receipt tables, then the gateway end to end (batched submit, delivery reports, STOP/START/
HELP, opt-out suppressions, retry and failover, refused callbacks, no credential anywhere)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from carriers_helpers import KE, UG, Operator, history
from providers.africastalking_server import STATUS_NAMES, AfricasTalkingServer
from providers.gateway_support import (
    BOTH_DATABASES,
    PUBLIC_URL,
    add_carrier_at,
    count,
    database_url,  # noqa: F401 - the module's fixture
    deliver,
    live_key,
    serving,
    settings,  # noqa: F401 - the module's fixture
)
from providers.provider_server import Fault, running
from smsc_support import eventually, request

from msgine.server.carriers import CallbackCarrier, CallbackRequest
from msgine.server.carriers._upstream import apply_rule
from msgine.server.carriers.africastalking import (
    FAILURE_REASONS,
    RECEIPT_STATES,
    RECIPIENT_ANSWERS,
    REQUEST_ANSWERS,
    AfricasTalkingCallbacks,
    AfricasTalkingCredentials,
    AfricasTalkingOptions,
    AfricasTalkingUpstream,
)
from msgine.server.storage._tables import events, inbound_messages, jobs, recipients, suppressions

pytestmark = pytest.mark.usefixtures("every_event_stored")  # which events, not who gets them

KE2 = "+254722123456"


@pytest.fixture
def at() -> Iterator[AfricasTalkingServer]:
    with running(AfricasTalkingServer(senders={"MsGine", "40404"})) as server:
        yield server


@pytest.fixture
def second_at() -> Iterator[AfricasTalkingServer]:
    with running(AfricasTalkingServer(username="backup-app")) as server:
        yield server


def add_at(operator: Operator, name: str, server: AfricasTalkingServer, **options: Any) -> str:
    extra = {k: options.pop(k) for k in ("retry_budget",) if k in options}
    base = add_carrier_at(
        operator,
        name,
        "africastalking",
        {"base_url": server.base_url, **options},
        {"username": server.username, "api_key": server.api_key},
        **extra,
    )
    server.delivery_reports_url = f"{base}/receipts"
    server.incoming_messages_url = f"{base}/inbound"
    return base


@contextlib.asynccontextmanager
async def connector(server: AfricasTalkingServer, **options: Any) -> AsyncIterator[Any]:
    upstream = AfricasTalkingUpstream(
        "at",
        AfricasTalkingOptions(base_url=server.base_url, **options),
        AfricasTalkingCredentials(username=server.username, api_key=server.api_key),
    )
    await upstream.start(None)  # type: ignore[arg-type]
    try:
        yield upstream
    finally:
        await upstream.stop()


def by_carrier_id(api: Any, message_id: str) -> dict[str, dict[str, Any]]:
    query = sa.select(recipients).where(recipients.c.message_id == message_id)
    rows = api.runtime.db.read(lambda c: c.execute(query).mappings().all())
    return {row["carrier_message_id"] or row["id"]: dict(row) for row in rows}


def route(operator: Operator, carriers: list[str]) -> None:
    for country in ("KE", "UG"):
        operator.add_route(carriers, country=country)


# --- the answer tables, row by row, at the connector -------------------------------------


@pytest.mark.parametrize(("key", "rule"), list(RECIPIENT_ANSWERS.items()), ids=str)
async def test_every_recipient_status_code_maps_as_the_table_says(
    at: AfricasTalkingServer, key: tuple[int, str], rule: Any
) -> None:
    code = key[0]
    at.rejections[UG] = code
    async with connector(at) as upstream:
        result = await upstream.submit(request(to=UG))
    expected = apply_rule(rule, f"{code} {STATUS_NAMES[code]}")
    assert (result.accepted, result.error_code, result.detail) == (
        expected.accepted,
        expected.error_code,
        expected.detail,
    )
    assert (result.retryable, result.failover, result.opted_out) == (
        expected.retryable,
        expected.failover,
        expected.opted_out,
    )
    if rule.outcome == "accepted":
        assert result.carrier_message_id == at.messages[0].message_id
    else:
        assert result.carrier_message_id is None


@pytest.mark.parametrize(("key", "rule"), list(REQUEST_ANSWERS.items()), ids=str)
async def test_every_http_answer_maps_as_the_table_says(
    at: AfricasTalkingServer, key: tuple[int, str], rule: Any
) -> None:
    at.inject(Fault(key[0], retry_after="7"))
    async with connector(at) as upstream:
        first, second = await _together(upstream, [request(to=KE), request(to=UG, key="k2")])
    for result in (first, second):  # one request for both: the same outcome for both
        assert not result.accepted
        assert (result.error_code, result.detail) == (rule.error_code, f"HTTP {key[0]}")
        assert (result.retryable, result.failover) == (
            rule.outcome == "retry",
            rule.outcome == "failover",
        )
        assert result.retry_after == (7.0 if rule.outcome == "retry" else None)
    assert len(at.api_requests()) == 1


async def _together(upstream: Any, submits: list[Any]) -> list[Any]:
    import asyncio

    return list(await asyncio.gather(*(upstream.submit(s) for s in submits)))


async def test_concurrent_submits_go_in_one_request_and_a_repeated_number_in_another(
    at: AfricasTalkingServer,
) -> None:
    submits = [request(to=KE), request(to=UG, key="k2"), request(to=KE, key="k3")]
    async with connector(at, default_sender="MsGine", enqueue=True) as upstream:
        results = await _together(upstream, [*submits, request("Other text", key="k4", to=KE2)])
    assert all(r.accepted for r in results)
    assert len({r.carrier_message_id for r in results}) == 4
    sent = sorted(r.field("to") or "" for r in at.api_requests())
    assert sent == sorted([f"{KE},{UG}", KE, KE2])
    for recorded in at.api_requests():
        assert recorded.field("from") == "MsGine"  # the request's own sender
        assert recorded.field("enqueue") == "1"
        assert recorded.headers["accept"] == "application/json"


async def test_an_unreadable_answer_leaves_the_outcome_to_the_crash_policy(
    at: AfricasTalkingServer,
) -> None:
    from msgine.server.carriers._upstream import UncertainSubmit

    at.rejections[KE] = 101
    async with connector(at) as upstream:
        upstream._client.post = _answering(b"<html>oops</html>")  # type: ignore[union-attr]
        with pytest.raises(UncertainSubmit):
            await upstream.submit(request(to=KE))


def _answering(body: bytes) -> Any:
    import httpx

    async def post(*args: Any, **kwargs: Any) -> httpx.Response:
        return httpx.Response(201, content=body, headers={"content-type": "text/html"})

    return post


def _callback_request(what: str, form: dict[str, str], ip: str = "127.0.0.1") -> CallbackRequest:
    return CallbackRequest(
        method="POST",
        url=f"{PUBLIC_URL}/api/v1/carriers/at/callbacks/t/{what}",
        what=what,
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=urlencode(form).encode(),
        client_ip=ip,
        received_at=datetime.now(UTC),
    )


def _carrier(**options: Any) -> CallbackCarrier:
    return CallbackCarrier(
        name="at",
        options=AfricasTalkingOptions(**options),
        credentials=AfricasTalkingCredentials(username="u", api_key="k" * 16),
        vault=None,  # type: ignore[arg-type]
    )


def _parsed(form: dict[str, str], what: str = "receipts") -> Any:
    return AfricasTalkingCallbacks().parse(_callback_request(what, form), _carrier())


@pytest.mark.parametrize(("state", "status"), list(RECEIPT_STATES.items()))
def test_every_delivery_report_status_maps_as_the_table_says(
    at: AfricasTalkingServer, state: str, status: str
) -> None:
    report = at.delivery_report("ATXid_1", KE, state, url="x")
    (receipt,) = _parsed(report.form).receipts
    assert (receipt.carrier_message_id, receipt.status, receipt.carrier_state) == (
        "ATXid_1",
        status,
        state,
    )
    assert receipt.to == KE
    expected = FAILURE_REASONS.get(state, ("undeliverable", False))[0]
    assert receipt.error_code == (expected if status == "failed" else None)


@pytest.mark.parametrize(("reason", "mapped"), list(FAILURE_REASONS.items()))
def test_every_failure_reason_maps_as_the_table_says(
    at: AfricasTalkingServer, reason: str, mapped: tuple[str, bool]
) -> None:
    report = at.delivery_report("ATXid_2", UG, "Failed", reason, url="x")
    (receipt,) = _parsed(report.form).receipts
    assert (receipt.status, receipt.error_code, receipt.opted_out) == ("failed", *mapped)


def test_an_unknown_status_or_reason_is_read_not_guessed(at: AfricasTalkingServer) -> None:
    odd = at.delivery_report("ATXid_3", UG, "Teleported", url="x")
    (receipt,) = _parsed(odd.form).receipts
    assert (receipt.status, receipt.carrier_state) == ("unknown", "Teleported")
    bad = at.delivery_report("ATXid_4", UG, "Failed", "SomethingNew", url="x")
    (receipt,) = _parsed(bad.form).receipts
    assert (receipt.status, receipt.error_code, receipt.opted_out) == (
        "failed",
        "undeliverable",
        False,
    )


# --- end to end through the gateway ------------------------------------------------------


@BOTH_DATABASES
async def test_a_send_to_several_numbers_is_one_request_and_reports_settle_each(
    api: Any, operator: Operator, at: AfricasTalkingServer
) -> None:
    add_at(operator, "at-ea", at)
    route(operator, ["at-ea"])
    at.outcomes[UG] = ("Failed", "DeliveryFailure")
    sent = await api.send(live_key(api), to=[KE, KE2, UG], message="Hello", **{"from": "MsGine"})
    assert sent.status_code == 201, sent.text
    async with serving(api):
        await api.drain()
        [submitted] = at.api_requests("/version1/messaging")
        assert sorted((submitted.field("to") or "").split(",")) == sorted([KE, KE2, UG])
        assert (submitted.field("message"), submitted.field("from")) == ("Hello", "MsGine")
        assert submitted.field("username") == at.username
        rows = by_carrier_id(api, sent.json()["id"])
        numbers = {m.message_id: m.number for m in at.messages}
        assert set(rows) == set(numbers)
        assert {(r["status"], r["carrier"]) for r in rows.values()} == {("sent", "at-ea")}
        for callback in at.take():
            assert (await deliver(api, callback)).status_code == 200
        rows = by_carrier_id(api, sent.json()["id"])
        outcome = {numbers[cmid]: (r["status"], r["error_code"]) for cmid, r in rows.items()}
        assert outcome == {
            KE: ("delivered", None),
            KE2: ("delivered", None),
            UG: ("failed", "undeliverable"),
        }
        assert count(api, events, events.c.type == "message.delivered") == 2
        assert count(api, events, events.c.type == "message.failed") == 1
        message = await api.client.get(
            f"/api/v1/messages/{sent.json()['id']}", headers=api.headers(live_key(api))
        )
        assert sorted(r["status"] for r in message.json()["recipients"]) == [
            "delivered",
            "delivered",
            "failed",
        ]


@BOTH_DATABASES
async def test_a_blacklisted_recipient_fails_for_good_and_is_suppressed(
    api: Any, operator: Operator, at: AfricasTalkingServer
) -> None:
    add_at(operator, "at-ea", at)
    route(operator, ["at-ea"])
    at.rejections[UG] = 406
    key = live_key(api)
    sent = await api.send(key, to=UG)
    async with serving(api):
        await api.drain()
        [row] = by_carrier_id(api, sent.json()["id"]).values()
        assert (row["status"], row["error_code"]) == ("failed", "recipient_opted_out")
        assert any("406 UserInBlacklist" in (h["detail"] or "") for h in history(api.runtime))
        assert count(api, suppressions, suppressions.c.source == "carrier:at-ea") == 1
        again = await api.send(key, to=UG)
        assert again.json()["recipients"][0]["errorCode"] == "recipient_opted_out"
        assert len(at.api_requests()) == 1  # the second message never left


async def test_a_report_saying_blacklisted_suppresses_the_number(
    api: Any, operator: Operator, at: AfricasTalkingServer
) -> None:
    add_at(operator, "at-ea", at)
    route(operator, ["at-ea"])
    at.outcomes[KE] = ("Rejected", "UserInBlackList")
    sent = await api.send(live_key(api), to=KE)
    async with serving(api):
        await api.drain()
        [report] = at.take()
        assert (await deliver(api, report)).status_code == 200
        [row] = by_carrier_id(api, sent.json()["id"]).values()
        assert (row["status"], row["error_code"]) == ("failed", "recipient_opted_out")
        assert count(api, suppressions) == 1


async def test_a_number_one_carrier_cannot_route_fails_over_alone(
    api: Any, operator: Operator, at: AfricasTalkingServer, second_at: AfricasTalkingServer
) -> None:
    add_at(operator, "at-ea", at)
    add_at(operator, "at-backup", second_at)
    route(operator, ["at-ea", "at-backup"])
    at.rejections[UG] = 407  # CouldNotRoute: another carrier may
    sent = await api.send(live_key(api), to=[KE, UG])
    async with serving(api):
        await api.drain()
        rows = by_carrier_id(api, sent.json()["id"])
        carriers = {r["carrier"] for r in rows.values()}
        assert carriers == {"at-ea", "at-backup"}
        assert [m.number for m in second_at.messages] == [UG]
        assert [m.number for m in at.messages] == [KE]
        notes = [h["detail"] or "" for h in history(api.runtime)]
        assert any("failover at-ea -> at-backup" in n and "407 CouldNotRoute" in n for n in notes)


async def test_server_errors_are_retried_then_fail_over(
    api: Any, operator: Operator, at: AfricasTalkingServer, second_at: AfricasTalkingServer
) -> None:
    add_at(operator, "at-ea", at, retry_budget=2)
    add_at(operator, "at-backup", second_at)
    route(operator, ["at-ea", "at-backup"])
    at.inject(Fault(503, times=10))
    sent = await api.send(live_key(api), to=KE)
    async with serving(api):
        for _ in range(3):
            await api.drain()
            api.runtime.clock.advance(seconds=400)  # past the backoff
        [row] = by_carrier_id(api, sent.json()["id"]).values()
        assert (row["status"], row["carrier"]) == ("sent", "at-backup")
        assert len(at.api_requests()) == 2  # the retry budget
        notes = [h["detail"] or "" for h in history(api.runtime, row["id"])]
        assert any("failover at-ea -> at-backup: retry budget spent" in n for n in notes)


async def test_a_rate_limit_answer_waits_as_long_as_retry_after_says(
    api: Any, operator: Operator, at: AfricasTalkingServer
) -> None:
    add_at(operator, "at-ea", at)
    route(operator, ["at-ea"])
    at.inject(Fault(429, retry_after="120"))
    sent = await api.send(live_key(api), to=KE)
    async with serving(api):
        before = api.runtime.now()
        await api.drain()
        [row] = by_carrier_id(api, sent.json()["id"]).values()
        assert row["status"] != "sent"
        query = sa.select(jobs.c.due_at).where(jobs.c.ref == row["id"])
        due = api.runtime.db.read(lambda c: c.execute(query).scalar_one())
        waited = (due.replace(tzinfo=UTC) - before).total_seconds()
        assert 119 <= waited <= 125
        api.runtime.clock.advance(seconds=121)
        await api.drain()
        [row] = by_carrier_id(api, sent.json()["id"]).values()
        assert row["status"] == "sent"
        assert len(at.api_requests()) == 2


@BOTH_DATABASES
async def test_stop_start_and_help_through_africas_talking(
    api: Any, operator: Operator, at: AfricasTalkingServer
) -> None:
    add_at(operator, "at-ea", at)
    route(operator, ["at-ea"])
    async with serving(api):
        stop = await deliver(api, at.incoming(UG, "STOP"))
        assert stop.status_code == 200
        assert count(api, suppressions) == 1
        assert count(api, events, events.c.type == "contact.opted_out") == 1
        assert count(api, inbound_messages) == 1
        blocked = await api.send(live_key(api), to=UG)
        assert blocked.json()["recipients"][0]["errorCode"] == "recipient_opted_out"
        assert (await deliver(api, at.incoming(UG, "START"))).status_code == 200
        assert count(api, suppressions) == 0
        assert (await deliver(api, at.incoming(UG, "HELP"))).status_code == 200
        await api.drain()
        # The confirmations and the help answer went out through the route, to the sender.
        await eventually(lambda: len(at.messages) == 3)
        assert {m.number for m in at.messages} == {UG}
        assert count(api, events, events.c.type == "message.received") == 3


async def test_forged_replayed_and_foreign_callbacks_are_refused_and_logged(
    api: Any, operator: Operator, at: AfricasTalkingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    base = add_at(operator, "at-ea", at)
    route(operator, ["at-ea"])
    token = base.rsplit("/", 1)[1]
    forged = at.incoming(UG, "STOP", url=base.replace(token, "x" * len(token)) + "/inbound")
    capsys.readouterr()
    assert (await deliver(api, forged)).status_code == 401
    genuine = at.incoming(UG, "hello")
    assert (await deliver(api, genuine)).status_code == 200
    assert (await deliver(api, genuine)).status_code == 401  # the same request again
    unknown = at.incoming(UG, "hello", url=f"{base}/elsewhere")
    assert (await deliver(api, unknown)).status_code == 401
    assert count(api, inbound_messages) == 1
    assert count(api, suppressions) == 0
    logged = "".join(capsys.readouterr())
    refusals = [line for line in logged.splitlines() if "carrier_callback_refused" in line]
    assert [r.split("reason=")[1].split()[0] for r in refusals] == [
        "bad_token",
        "replayed",
        "unknown_path",
    ]
    assert UG[1:] not in logged
    assert token not in logged  # nor the callback token


async def test_a_source_allow_list_refuses_other_addresses(
    api: Any, operator: Operator, at: AfricasTalkingServer
) -> None:
    add_at(operator, "at-ea", at, callback_sources=["196.201.214.0/24"])
    refused = await deliver(api, at.incoming(UG, "STOP"))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    operator.update_carrier("at-ea", options={"callback_sources": ["127.0.0.1/32"]})
    assert (await deliver(api, at.incoming(UG, "STOP"))).status_code == 200
    assert count(api, suppressions) == 1


async def test_credentials_never_reach_logs_errors_or_history(
    api: Any,
    operator: Operator,
    at: AfricasTalkingServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from msgine.server.carriers._config import get_carrier

    add_at(operator, "at-ea", at)
    route(operator, ["at-ea"])
    at.api_key = "atsk_" + "rotated" * 6  # the stored key is now wrong: AT answers 401
    with caplog.at_level(logging.DEBUG):
        sent = await api.send(live_key(api), to=KE)
        async with serving(api):
            await api.drain()
    [row] = by_carrier_id(api, sent.json()["id"]).values()
    assert (row["status"], row["error_code"]) == ("failed", "upstream_unauthorized")
    stored_key = at.requests[0].headers["apikey"]
    view = api.runtime.db.read(lambda c: get_carrier(c, api.runtime.vault, "at-ea"))
    notes = " ".join(h["detail"] or "" for h in history(api.runtime))
    logged = "".join(capsys.readouterr())
    assert "submitted" in logged  # the worker's log was captured
    for place in (caplog.text, logged, notes, repr(view), str(view)):
        assert stored_key not in place
        assert KE[1:] not in place
    assert "HTTP 401" in notes
