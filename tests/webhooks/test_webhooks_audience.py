"""Events are stored only when something receives them: a subscribed endpoint of their account
and mode, the message's callback URL, or (test mode) a running ``webhooks listen`` session."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from webhooks_helpers import create_endpoint

from msgine.server import events
from msgine.server.storage import batch_memo
from msgine.server.storage._tables import events as events_table
from msgine.server.storage._tables import webhook_deliveries
from msgine.server.webhooks import ListenSession
from msgine.server.webhooks._listen import LISTENER_TTL, trigger
from webhook_receiver import Receiver


def stored(api: Any) -> list[tuple[str, str]]:
    """(type, mode) of every stored event, oldest first."""
    query = sa.select(events_table.c.type, events_table.c.mode).order_by(
        events_table.c.created_at, events_table.c.id
    )
    return [tuple(row) for row in api.runtime.db.read(lambda conn: conn.execute(query).all())]


def key_of(api: Any, mode: str) -> str | None:
    if mode == "test":
        return None
    api.runtime.settings.allow_simulator_for_live = True  # a live message without a carrier
    return str(api.new_key(mode="live"))


@pytest.mark.parametrize("mode", ["test", "live"])
async def test_no_audience_no_event(api: Any, mode: str) -> None:
    key = key_of(api, mode)
    sent = await api.send(key=key, to=["+256701521269", "+256701521999"])  # 999 fails
    assert sent.status_code == 201, sent.text
    await api.drain()
    assert stored(api) == []
    detail = await api.client.get(f"/api/v1/messages/{sent.json()['id']}", headers=api.headers(key))
    assert sorted(r["status"] for r in detail.json()["recipients"]) == ["delivered", "failed"]


@pytest.mark.parametrize("mode", ["test", "live"])
async def test_a_subscribed_endpoint_of_the_mode_gets_its_event_types_stored(
    api: Any, receiver: Receiver, mode: str
) -> None:
    key = key_of(api, mode)
    other = "live" if mode == "test" else "test"
    created = await api.client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url("/d"), "events": ["message.delivered"]},
        headers=api.headers(key),
    )
    assert created.status_code == 201, created.text
    # Another mode's endpoint, and a disabled one, receive nothing of this mode's messages.
    await api.client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url("/o")},
        headers=api.headers(key_of(api, other)),
    )
    disabled = await api.client.post(
        "/api/v1/webhooks", json={"url": receiver.url("/x")}, headers=api.headers(key)
    )
    await api.client.patch(
        f"/api/v1/webhooks/{disabled.json()['id']}",
        json={"enabled": False},
        headers=api.headers(key),
    )
    assert (await api.send(key=key)).status_code == 201
    await api.drain()
    assert stored(api) == [("message.delivered", mode)]
    assert [h.event["event"] for h in receiver.hits_for("/d")] == ["message.delivered"]
    assert receiver.hits_for("/o") == [] and receiver.hits_for("/x") == []


@pytest.mark.parametrize("mode", ["test", "live"])
async def test_a_callback_url_gets_its_message_events_stored(
    api: Any, receiver: Receiver, mode: str
) -> None:
    key = key_of(api, mode)
    assert (await api.send(key=key, callbackUrl=receiver.url("/cb"))).status_code == 201
    assert (await api.send(key=key)).status_code == 201  # no callback: nothing stored
    await api.drain()
    assert stored(api) == [("message.sent", mode), ("message.delivered", mode)]
    query = sa.select(webhook_deliveries.c.url)
    urls = api.runtime.db.read(lambda conn: conn.execute(query).scalars().all())
    assert urls == [receiver.url("/cb")] * 2


async def test_a_listen_session_gets_test_events_stored_while_it_runs(api: Any) -> None:
    runtime = api.runtime
    live = key_of(api, "live")
    with ListenSession(runtime.db, runtime.vault, api.account_id, runtime.now) as session:
        assert (await api.send()).status_code == 201
        assert (await api.send(key=live)).status_code == 201  # listen follows test mode only
        await api.drain()
        assert stored(api) == [("message.sent", "test"), ("message.delivered", "test")]
        assert [event.type for event in session.poll()] == ["message.sent", "message.delivered"]
        # A session renews its registration as it polls, so it outlives the first expiry.
        runtime.clock.advance(seconds=LISTENER_TTL.total_seconds() / 2)
        session.poll()
        runtime.clock.advance(seconds=LISTENER_TTL.total_seconds() * 3 / 4)
        assert (await api.send()).status_code == 201
        await api.drain()
        assert len(stored(api)) == 4
    # Closed: nothing stored any more; a triggered event has nobody to go to.
    assert (await api.send()).status_code == 201
    await api.drain()
    now = runtime.now()
    triggered = runtime.db.write(
        lambda conn: trigger(conn, runtime.vault, api.account_id, "message.delivered", now)
    )
    assert triggered is None and len(stored(api)) == 4


async def test_a_listen_session_that_stopped_polling_expires(api: Any) -> None:
    runtime = api.runtime
    session = ListenSession(runtime.db, runtime.vault, api.account_id, runtime.now)
    runtime.clock.advance(seconds=LISTENER_TTL.total_seconds() + 1)  # killed: never closed
    assert (await api.send()).status_code == 201
    await api.drain()
    assert stored(api) == []
    assert session.poll() == []  # polling again registers it again
    assert (await api.send()).status_code == 201
    await api.drain()
    assert len(stored(api)) == 2


async def test_an_endpoint_created_in_a_batch_gets_the_batchs_next_events(
    api: Any, receiver: Receiver
) -> None:
    """The audience is read once per group-committed batch; creating an endpoint in it
    makes the next event of the same batch see the endpoint."""
    from msgine.server.audit import Actor
    from msgine.server.webhooks import create_endpoint as create

    runtime = api.runtime
    now = runtime.now()

    def batch(conn: sa.Connection) -> tuple[bool, bool, bool]:
        def ask() -> events.Audience:
            return events.audience(
                conn,
                account_id=api.account_id,
                mode="test",
                event_type="message.delivered",
                now=now,
            )

        before = ask()
        create(
            conn,
            runtime.vault,
            Actor(name="test"),
            account_id=api.account_id,
            mode="test",
            url=receiver.url(),
            subscribed=[],
            description=None,
            now=now,
        )
        return batch_memo(conn) is not None, bool(before), bool(ask())

    assert runtime.db.write(batch) == (True, False, True)


async def test_an_endpoint_created_later_gets_the_next_events(api: Any, receiver: Receiver) -> None:
    assert (await api.send()).status_code == 201
    await api.drain()
    await create_endpoint(api, receiver.url())
    assert (await api.send()).status_code == 201
    await api.drain()
    assert stored(api) == [("message.sent", "test"), ("message.delivered", "test")]
    assert len(receiver.hits_for()) == 2
