"""Live traffic through routes: no route no send, route prices, failover, receipts, inbound,
and what an uncertain submit becomes, driven through the API and the worker."""

from __future__ import annotations

from typing import Any

import carrier_stub
import pytest
import sqlalchemy as sa
from carriers_helpers import KE, UG, Operator, history, recipient

from msgine.server.carriers import InboundMessage, Receipt
from msgine.server.storage._tables import carrier_receipts, events, inbound_messages, suppressions

pytestmark = pytest.mark.usefixtures("every_event_stored")  # which events, not who gets them


def live_key(api: Any) -> str:
    return str(api.new_key(mode="live", name="prod"))


async def send_live(api: Any, **body: Any) -> Any:
    return await api.send(live_key(api), **body)


async def test_a_live_send_without_a_real_route_is_refused_naming_the_country(api: Any) -> None:
    response = await send_live(api, to=[UG, KE])
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "no_route"
    assert body["error"]["details"] == {"countries": ["KE", "UG"]}
    assert "KE" in body["error"]["message"]
    for number in (UG, KE):
        assert number[1:] not in response.text  # never the number
    # Nothing was stored.
    listed = await api.client.get("/api/v1/messages", headers=api.headers(live_key(api)))
    assert listed.json()["total"] == 0


async def test_a_route_through_only_the_simulator_is_no_real_route(
    api: Any, operator: Operator
) -> None:
    from msgine.server.carriers._config import add_carrier

    runtime = api.runtime
    runtime.db.write(
        lambda c: add_carrier(
            c,
            runtime.vault,
            name="staging-sim",
            kind="simulator",
            options={},
            credentials=None,
            now=runtime.now(),
            actor=operator.actor,
        )
    )
    operator.add_route(["staging-sim"])
    assert (await send_live(api)).json()["error"]["code"] == "no_route"


async def test_live_goes_to_the_route_at_its_price_and_test_keys_never_do(
    api: Any, operator: Operator
) -> None:
    operator.add_carrier("mtn")
    operator.add_route(["mtn"], price_per_segment=41, currency="KES")
    sent = await send_live(api, message="x" * 200)  # two segments
    assert sent.status_code == 201, sent.text
    assert (sent.json()["cost"], sent.json()["currency"]) == (82, "KES")
    assert "warnings" not in sent.json()
    test = await api.send(to=UG)
    assert (test.json()["cost"], test.json()["currency"]) == (30, "UGX")  # the simulator's
    await api.drain()
    [submit] = operator.submits("mtn")  # the live message only
    live = recipient(api.runtime, sent.json()["id"])
    assert submit["key"] == live["id"]
    assert (live["status"], live["carrier"]) == ("sent", "mtn")
    assert live["carrier_message_id"] == carrier_stub.carrier_id(live["id"])
    assert recipient(api.runtime, test.json()["id"])["status"] == "delivered"


async def test_staging_may_let_the_simulator_serve_live_traffic_and_says_so(api: Any) -> None:
    api.runtime.settings.allow_simulator_for_live = True
    sent = await send_live(api)
    assert sent.status_code == 201
    body = sent.json()
    assert body["carrier"] == "simulator"
    assert "reaches no phone" in body["warnings"][0]
    await api.drain()
    assert recipient(api.runtime, body["id"])["status"] == "delivered"


async def test_a_refusing_carrier_fails_over_to_the_next_without_a_duplicate(
    api: Any, operator: Operator
) -> None:
    operator.add_carrier("first", behaviour="failover", detail="ESME_RINVDSTADR")
    operator.add_carrier("second")
    operator.add_route(["first", "second"])
    sent = await send_live(api)
    await api.drain()
    row = recipient(api.runtime, sent.json()["id"])
    assert (row["status"], row["carrier"]) == ("sent", "second")
    assert len(operator.submits("second")) == 1
    notes = [h["detail"] for h in history(api.runtime, row["id"]) if h["detail"]]
    assert any("failover first -> second: refused (ESME_RINVDSTADR)" in n for n in notes)


async def test_a_carrier_that_is_down_is_skipped_with_the_reason(
    api: Any, operator: Operator
) -> None:
    operator.add_carrier("first", down=True)
    operator.add_carrier("second")
    operator.add_route(["first", "second"])
    sent = await send_live(api)
    await api.drain()
    row = recipient(api.runtime, sent.json()["id"])
    assert (row["status"], row["carrier"]) == ("sent", "second")
    assert operator.submits("first") == []
    notes = [h["detail"] for h in history(api.runtime, row["id"]) if h["detail"]]
    assert any(n.startswith("failover first -> second: down: bind refused") for n in notes)


async def test_throttling_past_the_retry_budget_fails_over(
    api: Any, operator: Operator, clock: Any
) -> None:
    operator.add_carrier("first", behaviour="retry", retry_after=0, retry_budget=2)
    operator.add_carrier("second")
    operator.add_route(["first", "second"])
    sent = await send_live(api)
    await api.drain()
    row = recipient(api.runtime, sent.json()["id"])
    assert (row["status"], row["carrier"]) == ("sent", "second")
    notes = [h["detail"] for h in history(api.runtime, row["id"]) if h["detail"]]
    assert any("retry budget spent (ESME_RTHROTTLED)" in n for n in notes)


async def test_the_last_carrier_refusing_for_good_fails_the_recipient(
    api: Any, operator: Operator
) -> None:
    operator.add_carrier("only", behaviour="fail", detail="ESME_RINVDSTADR")
    operator.add_route(["only"])
    sent = await send_live(api)
    await api.drain()
    row = recipient(api.runtime, sent.json()["id"])
    assert (row["status"], row["error_code"]) == ("failed", "invalid_destination")


async def _receipt(api: Any, carrier: str, receipt: Receipt) -> None:
    instance = api.worker.fleet.get(carrier)
    await instance.events.receipt(carrier, receipt)


def _events(api: Any, event_type: str) -> int:
    query = sa.select(sa.func.count()).select_from(events).where(events.c.type == event_type)
    return int(api.runtime.db.read(lambda c: c.execute(query).scalar()))


async def test_a_receipt_moves_the_recipient_and_raises_the_webhook_event(
    api: Any, operator: Operator
) -> None:
    operator.add_carrier("mtn")
    operator.add_route(["mtn"])
    sent = await send_live(api)
    await api.drain()
    row = recipient(api.runtime, sent.json()["id"])
    cmid = row["carrier_message_id"]
    await _receipt(api, "mtn", Receipt(cmid, "delivered", "DELIVRD"))
    assert recipient(api.runtime, sent.json()["id"])["status"] == "delivered"
    assert _events(api, "message.delivered") == 1
    assert history(api.runtime, row["id"])[-1]["detail"] == "receipt: DELIVRD"
    await api.worker.fleet.stop_all()


async def _sent_not_submitted(api: Any, operator: Operator) -> tuple[str, str]:
    """A live send routed to the started stub carrier "mtn", not submitted yet: (message id,
    the carrier id its submit will get)."""
    operator.add_carrier("mtn")
    operator.add_route(["mtn"])
    sent = await send_live(api)
    rid = recipient(api.runtime, sent.json()["id"])["id"]
    await api.worker.fleet.refresh()  # the carrier is started; no submit recorded yet
    return sent.json()["id"], carrier_stub.carrier_id(rid)


def _kept_receipts(api: Any) -> int:
    return len(api.runtime.db.read(lambda c: c.execute(sa.select(carrier_receipts)).all()))


async def test_a_receipt_before_the_submits_record_is_kept_and_applied(
    api: Any, operator: Operator
) -> None:
    message_id, cmid = await _sent_not_submitted(api, operator)
    await _receipt(api, "mtn", Receipt(cmid, "failed", "UNDELIV", "undeliverable"))
    assert _kept_receipts(api) == 1
    await api.drain()
    row = recipient(api.runtime, message_id)
    assert (row["status"], row["error_code"]) == ("failed", "undeliverable")
    assert _kept_receipts(api) == 0


async def test_a_receipt_while_its_submit_is_being_recorded_waits_and_matches_directly(
    api: Any, operator: Operator
) -> None:
    import asyncio

    message_id, cmid = await _sent_not_submitted(api, operator)
    api.worker.sink.expect("mtn", cmid)  # as the worker does when the submit returns
    early = asyncio.create_task(_receipt(api, "mtn", Receipt(cmid, "delivered", "DELIVRD")))
    await asyncio.sleep(0.1)
    assert not early.done()  # waiting for the record, not kept aside as an early receipt
    assert _kept_receipts(api) == 0
    await api.drain()  # records the submit, then lets the receipt go
    await asyncio.wait_for(early, 10)
    row = recipient(api.runtime, message_id)
    assert row["status"] == "delivered"
    assert [h["status"] for h in history(api.runtime, row["id"])][-2:] == ["sent", "delivered"]
    assert _events(api, "message.delivered") == 1


async def test_a_submit_that_raised_becomes_unknown_and_a_receipt_settles_it(
    api: Any, operator: Operator
) -> None:
    operator.add_carrier("mtn", behaviour="raise")
    operator.add_route(["mtn"])
    sent = await send_live(api)
    await api.drain()
    row = recipient(api.runtime, sent.json()["id"])
    assert (row["status"], row["error_code"]) == ("unknown", "uncertain_submit")
    assert len(operator.submits("mtn")) == 1  # never sent again
    # A receipt naming the number settles it, though its carrier id was never recorded.
    await _receipt(api, "mtn", Receipt("smsc-77", "delivered", "DELIVRD", to=UG))
    row = recipient(api.runtime, sent.json()["id"])
    assert (row["status"], row["carrier_message_id"]) == ("delivered", "smsc-77")
    statuses = [h["status"] for h in history(api.runtime, row["id"])]
    assert statuses == ["queued", "unknown", "delivered"]


async def test_resubmit_policy_sends_again_and_says_so(api: Any, operator: Operator) -> None:
    operator.add_carrier("mtn", behaviour="raise", on_uncertain_submit="resubmit")
    operator.add_route(["mtn"])
    sent = await send_live(api)
    await api.worker.run_once()
    operator.update_carrier("mtn", options={"behaviour": "accept"})
    api.runtime.db.write(lambda c: c.exec_driver_sql("UPDATE jobs SET due_at = created_at"))
    await api.drain()
    row = recipient(api.runtime, sent.json()["id"])
    assert row["status"] == "sent"
    assert len(operator.submits("mtn")) == 2
    notes = [h["detail"] for h in history(api.runtime, row["id"]) if h["detail"]]
    assert "resubmitting to mtn after an uncertain submit" in notes


async def test_inbound_enters_the_pipeline_once_and_stop_opts_out(
    api: Any, operator: Operator
) -> None:
    operator.add_carrier("mtn")
    await api.worker.fleet.refresh()
    sink = api.worker.fleet.get("mtn").events
    stop = InboundMessage(sender=UG, to="+256700000001", text="STOP", carrier_message_id="mo-1")
    await sink.inbound("mtn", stop)
    await sink.inbound("mtn", stop)  # the carrier redelivers: stored once
    stored = api.runtime.db.read(lambda c: c.execute(sa.select(inbound_messages)).mappings().all())
    assert len(stored) == 1
    assert stored[0]["keyword"] == "opt_out"
    assert stored[0]["carrier"] == "mtn"
    opted = api.runtime.db.read(lambda c: c.execute(sa.select(suppressions)).all())
    assert len(opted) == 1
    assert _events(api, "message.received") == 1
    assert _events(api, "contact.opted_out") == 1
    await api.worker.fleet.stop_all()


async def test_carrier_metrics_count_submits_by_outcome(api: Any, operator: Operator) -> None:
    operator.add_carrier("metered", behaviour="fail", detail="ESME_RINVDSTADR")
    operator.add_route(["metered"])
    await send_live(api)
    await api.drain()
    text = (await api.client.get("/metrics")).text
    assert (
        'msgine_carrier_submits_total{carrier="metered",detail="ESME_RINVDSTADR",outcome="failed"}'
        in text
    )
    assert 'msgine_carrier_submit_seconds_count{carrier="metered"}' in text
    assert UG[1:] not in text
