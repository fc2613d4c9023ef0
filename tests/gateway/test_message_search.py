"""Finding messages (the console's search): by id, status, date range and recipient through the
blind index, in keyset pages behind a cursor; and one message's timeline per recipient."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from msgine.server.errors import InvalidPhoneNumber, InvalidRequest, NotFound
from msgine.server.messages import (
    MessageFilter,
    StatusStep,
    mask_number,
    message_detail,
    search_messages,
)

ALICE = "+256701521269"
BOB = "+256772000111"


def _search(api: Any, **kwargs: Any) -> Any:
    limit = kwargs.pop("limit", 25)
    cursor = kwargs.pop("cursor", None)
    wanted = MessageFilter(account_id=kwargs.pop("account_id", api.account_id), **kwargs)
    return api.runtime.db.read(
        lambda conn: search_messages(conn, api.runtime.vault, wanted, limit=limit, cursor=cursor)
    )


async def _sent(api: Any, to: Any, **body: Any) -> str:
    answer = await api.send(to=to, **body)
    assert answer.status_code == 201, answer.text
    message_id: str = answer.json()["id"]
    return message_id


async def test_search_by_recipient_status_id_and_dates(api: Any) -> None:
    first = await _sent(api, ALICE)
    api.runtime.clock.advance(seconds=60)
    second = await _sent(api, [BOB, ALICE])
    api.runtime.clock.advance(seconds=60)
    failing = await _sent(api, "+256772000999")  # the simulator fails numbers ending in 999
    await api.drain()

    by_alice = _search(api, recipient="+256 70 152 1269")  # typed with spaces
    assert [m.id for m in by_alice.items] == [second, first]
    assert [m.id for m in _search(api, recipient=BOB).items] == [second]
    assert [m.id for m in _search(api, status="failed").items] == [failing]
    assert {m.id for m in _search(api, status="delivered").items} == {first, second}
    assert [m.id for m in _search(api, message_id=first).items] == [first]
    start = api.runtime.now() - timedelta(seconds=90)
    assert [m.id for m in _search(api, since=start).items] == [failing, second]
    assert [m.id for m in _search(api, since=start, until=start + timedelta(seconds=60)).items] == [
        second
    ]
    assert _search(api, recipient=ALICE, status="failed").items == []
    # Numbers come back decrypted for the page to mask; never in a repr.
    summary = by_alice.items[0]
    assert [r.number for r in summary.recipients] == [BOB, ALICE]
    assert ALICE not in repr(summary)
    # The same number in another account is another blind index: nothing found there.
    other, _ = api.new_account()
    assert _search(api, account_id=other, recipient=ALICE).items == []
    assert _search(api, mode="live").items == []


async def test_pages_follow_the_cursor_without_gaps_or_repeats(api: Any) -> None:
    sent = []
    for _ in range(5):
        sent.append(await _sent(api, ALICE))
    # Same-instant messages too: the id breaks the tie.
    sent.append(await _sent(api, BOB))
    seen: list[str] = []
    cursor = None
    while True:
        page = _search(api, limit=2, cursor=cursor)
        seen.extend(m.id for m in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(sent) and len(seen) == len(set(seen))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"cursor": "not-a-cursor"}, InvalidRequest),
        ({"cursor": "MjAyNnxtc2c"}, InvalidRequest),
        ({"status": "<script>"}, InvalidRequest),
        ({"limit": 0}, InvalidRequest),
        ({"recipient": "0701521269"}, InvalidPhoneNumber),
    ],
)
async def test_bad_search_input_is_a_clear_error(api: Any, kwargs: Any, error: type) -> None:
    with pytest.raises(error):
        _search(api, **kwargs)


async def test_detail_has_each_recipients_timeline(api: Any) -> None:
    message_id = await _sent(api, [ALICE, "+256772000999"], message="Hi there")
    await api.drain()
    detail = api.runtime.db.read(
        lambda conn: message_detail(conn, api.runtime.vault, api.account_id, message_id, "test")
    )
    assert detail.content == "Hi there" and "Hi there" not in repr(detail)
    delivered, failed = detail.timelines
    assert delivered.recipient.number == ALICE
    assert [s.status for s in delivered.steps] == ["queued", "sent", "delivered"]
    assert [s.status for s in failed.steps][-1] == "failed"
    assert failed.steps[-1].error_code
    times = [s.at for s in delivered.steps]
    assert times == sorted(times)
    with pytest.raises(NotFound):
        api.runtime.db.read(
            lambda conn: message_detail(conn, api.runtime.vault, api.account_id, message_id, "live")
        )
    with pytest.raises(NotFound):
        api.runtime.db.read(
            lambda conn: message_detail(conn, api.runtime.vault, "acc_other", message_id)
        )


async def test_a_plain_delivery_stores_no_history_row_and_shows_every_step(api: Any) -> None:
    """queued, sent and delivered come from the recipient row: no status_events row."""
    import sqlalchemy as sa

    from msgine.server.storage._tables import recipients, status_events

    message_id = await _sent(api, [ALICE])
    await api.drain()
    db = api.runtime.db
    assert db.read(lambda c: c.execute(sa.select(status_events)).all()) == []
    row = db.read(lambda c: c.execute(sa.select(recipients)).mappings().one())
    detail = db.read(lambda c: message_detail(c, api.runtime.vault, api.account_id, message_id))
    [timeline] = detail.timelines
    cmid = row["carrier_message_id"]
    assert cmid and timeline.steps == (
        StatusStep("queued", detail.summary.created_at, None, None, None, None),
        StatusStep("sent", row["sent_at"], None, "simulator", cmid, None),
        StatusStep("delivered", row["delivered_at"], None, None, cmid, None),
    )


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("+256701521269", "+256 70* *** 269"),
        ("+15555550123", "+1 55* *** * 123"),
        ("+447400123456", "+44 74* *** * 456"),
        ("+80012345678", "+800 12* ** 678"),
        ("+3545", "****"),
        ("not a number", ""),
        (None, ""),
    ],
)
def test_numbers_are_masked_as_the_issue_shows(number: str | None, shown: str) -> None:
    assert mask_number(number) == shown


async def test_receipt_latency_per_day_from_a_bounded_sample(api: Any) -> None:
    from msgine.server.messages import receipt_latency

    today = api.runtime.now().date()
    for _ in range(3):
        await _sent(api, ALICE)
    await _sent(api, "+256772000999")  # failed: not a receipt of delivery
    await api.drain()
    yesterday = today - timedelta(days=1)
    points = api.runtime.db.read(
        lambda conn: receipt_latency(conn, api.account_id, "test", [yesterday, today], sample=2)
    )
    assert [(p.day, p.samples) for p in points] == [(yesterday, 0), (today, 2)]
    assert points[0].median_seconds is None
    assert points[1].median_seconds is not None and points[1].median_seconds >= 0
    assert points[1].p95_seconds is not None
    assert points[1].p95_seconds >= points[1].median_seconds
    live = api.runtime.db.read(lambda conn: receipt_latency(conn, api.account_id, "live", [today]))
    assert live[0].samples == 0
