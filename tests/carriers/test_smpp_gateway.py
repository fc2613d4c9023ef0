"""The gateway with SMPP carriers at Node SMSCs: live sends to the SMSC, receipts moving
statuses and raising events, MO keywords, and failover between two SMSCs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from carriers_helpers import UG, Operator, history, recipient
from smsc_support import PASSWORD, SYSTEM_ID, Smsc, eventually, start_smsc

from msgine.server.storage._tables import events, suppressions

pytestmark = pytest.mark.usefixtures("every_event_stored")  # which events, not who gets them


def add_smpp(operator: Operator, name: str, smsc: Smsc, **options: Any) -> None:
    from msgine.server.carriers._config import add_carrier

    runtime = operator.runtime
    settings = {
        "host": "127.0.0.1",
        "port": smsc.port,
        "reconnect_first": 0.05,
        "reconnect_max": 0.5,
        "bind_wait": 3,
        **options,
    }
    runtime.db.write(
        lambda conn: add_carrier(
            conn,
            runtime.vault,
            name=name,
            kind="smpp",
            options=settings,
            credentials={"system_id": SYSTEM_ID, "password": PASSWORD},
            now=runtime.now(),
            actor=operator.actor,
        )
    )


@pytest.fixture
def second_smsc() -> Iterator[Smsc]:
    peer = start_smsc("--id-prefix", "b")
    try:
        yield peer
    finally:
        peer.stop()


def live_key(api: Any) -> str:
    return str(api.new_key(mode="live", name="prod"))


def _count_events(api: Any, name: str) -> int:
    query = sa.select(sa.func.count()).select_from(events).where(events.c.type == name)
    return int(api.runtime.db.read(lambda c: c.execute(query).scalar_one()))


async def _settled(api: Any, message_id: str, status: str) -> dict[str, Any]:
    await eventually(lambda: recipient(api.runtime, message_id)["status"] == status)
    return recipient(api.runtime, message_id)


@pytest.mark.parametrize(
    ("stat", "status", "event"),
    [("DELIVRD", "delivered", "message.delivered"), ("UNDELIV", "failed", "message.failed")],
)
async def test_a_live_message_reaches_the_smsc_and_its_receipt_settles_it(
    api: Any, operator: Operator, smsc: Smsc, stat: str, status: str, event: str
) -> None:
    smsc.configure(receipts={"stat": stat})
    add_smpp(operator, "smsc-a", smsc)
    operator.add_route(["smsc-a"])
    text = "Your code is 4321. Café {ok} €"
    sent = await api.send(live_key(api), message=text, **{"from": "MsGine"})
    assert sent.status_code == 201, sent.text
    try:
        await api.drain()
        row = await _settled(api, sent.json()["id"], status)
        [message] = smsc.state()["messages"]
        assert message["text"] == text
        assert message["source"] == "MsGine"
        assert row["carrier"] == "smsc-a"
        assert row["carrier_message_id"] == message["messageIds"][-1]
        assert [h["status"] for h in history(api.runtime, row["id"])][-1] == status
        await eventually(lambda: _count_events(api, event) == 1)
        # The SMSC saw its receipt acknowledged (after the status change was stored).
        await eventually(lambda: len(smsc.state()["delivered"]) == 1)
    finally:
        await api.worker.fleet.stop_all()


async def test_test_keys_never_reach_the_smsc(api: Any, operator: Operator, smsc: Smsc) -> None:
    add_smpp(operator, "smsc-a", smsc)
    operator.add_route(["smsc-a"])
    sent = await api.send(message="test traffic")
    assert sent.status_code == 201
    try:
        await api.drain()
        assert recipient(api.runtime, sent.json()["id"])["status"] == "delivered"
        assert smsc.state()["submits"] == []
    finally:
        await api.worker.fleet.stop_all()


async def test_stop_and_start_over_smpp(api: Any, operator: Operator, smsc: Smsc) -> None:
    add_smpp(operator, "smsc-a", smsc)
    operator.add_route(["smsc-a"])

    def suppressed() -> int:
        query = sa.select(sa.func.count()).select_from(suppressions)
        return int(api.runtime.db.read(lambda c: c.execute(query).scalar_one()))

    try:
        await api.worker.fleet.refresh()
        smsc.mo(UG, "STOP", to="12345")
        await eventually(lambda: suppressed() == 1)
        await eventually(lambda: _count_events(api, "contact.opted_out") == 1)
        blocked = await api.send(live_key(api), message="promo")
        assert blocked.json()["recipients"][0]["errorCode"] == "recipient_opted_out"
        # START, sent as a concatenated UCS-2 message with an emoji, opts back in.
        smsc.mo(UG, "START 😀 " + "x" * 80, to="12345", coding="ucs2", concat="udh8")
        await eventually(lambda: suppressed() == 0)
        await eventually(lambda: _count_events(api, "message.received") == 2)
    finally:
        await api.worker.fleet.stop_all()


async def test_failover_to_a_second_smsc_when_the_first_refuses(
    api: Any, operator: Operator, smsc: Smsc, second_smsc: Smsc
) -> None:
    smsc.configure(submitStatus=0x0A)  # ESME_RINVSRCADR: this carrier will not take it
    add_smpp(operator, "smsc-a", smsc)
    add_smpp(operator, "smsc-b", second_smsc)
    operator.add_route(["smsc-a", "smsc-b"])
    sent = await api.send(live_key(api), message="failover please")
    try:
        await api.drain()
        row = recipient(api.runtime, sent.json()["id"])
        assert (row["status"], row["carrier"]) == ("sent", "smsc-b")
        assert row["carrier_message_id"].startswith("b")
        assert len(smsc.state()["submits"]) == 1
        assert [m["text"] for m in second_smsc.state()["messages"]] == ["failover please"]
        notes = [h["detail"] or "" for h in history(api.runtime, row["id"])]
        assert any(
            "failover smsc-a -> smsc-b" in note and "ESME_RINVSRCADR" in note for note in notes
        )
    finally:
        await api.worker.fleet.stop_all()


async def test_failover_when_the_first_smsc_refuses_binds(
    api: Any, operator: Operator, smsc: Smsc, second_smsc: Smsc
) -> None:
    smsc.configure(refuseBinds=0x0D)
    add_smpp(operator, "smsc-a", smsc, bind_wait=0.5)
    add_smpp(operator, "smsc-b", second_smsc)
    operator.add_route(["smsc-a", "smsc-b"])
    sent = await api.send(live_key(api), message="first is down")
    try:
        await api.drain()
        row = recipient(api.runtime, sent.json()["id"])
        assert (row["status"], row["carrier"]) == ("sent", "smsc-b")
        assert smsc.state()["submits"] == []
        assert len(second_smsc.state()["submits"]) == 1
        # /readyz: degraded, not down, while the second SMSC serves; the refusal's status shows.
        from msgine.server.worker import publish_health

        await publish_health(api.worker)
        readyz = (await api.client.get("/readyz")).json()
        served = readyz["carriers"]["carriers"]
        assert (served["smsc-a"]["state"], served["smsc-a"]["detail"]) == (
            "down",
            "bind refused: ESME_RBINDFAIL",
        )
        assert (served["smsc-b"]["state"], served["smsc-b"]["bindsUp"]) == ("up", 1)
        assert readyz["status"] == "degraded"
    finally:
        await api.worker.fleet.stop_all()
