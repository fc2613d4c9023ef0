"""Reads declared by a batch's writes (``BatchRead``) are made ahead, together, and answer as
the writes' own reads would have, on both databases."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest
import sqlalchemy as sa

from msgine.server import compliance
from msgine.server.accounts import create_account
from msgine.server.audit import Actor
from msgine.server.compliance import _gate
from msgine.server.keys import Principal
from msgine.server.messages import accept, build_command, send_reads
from msgine.server.messages._service import SendResult
from msgine.server.storage import BatchRead

OPTED_OUT = "+256701000001"
WELCOME = "+256701000002"


@pytest.fixture
def account(runtime: Any) -> str:
    account_id: str = runtime.db.write(lambda conn: create_account(conn, "batch", runtime.now()))
    return account_id


def principal(account_id: str, mode: str = "live") -> Principal:
    return Principal(
        key_id="key_batch",
        account_id=account_id,
        mode=mode,  # type: ignore[arg-type]
        scopes=frozenset({"messages:send"}),
        rate_limit=None,
    )


Write = tuple[Callable[[sa.Connection], Any], list[BatchRead] | None]


def send_to(
    runtime: Any, who: Principal, number: str, message_type: str = "transactional"
) -> Write:
    """A send as the API route queues it: its write and its declared reads."""
    now = runtime.now()
    cmd = build_command(
        to=number,
        message="hello",
        sender=None,
        callback_url=None,
        scheduled_for=None,
        message_type=message_type,
        idempotency_key=None,
        now=now,
    )
    indexes, reads = send_reads(runtime.vault, who, cmd)

    def write(conn: sa.Connection) -> SendResult:
        return accept(
            conn,
            runtime.vault,
            who,
            cmd,
            now=now,
            price_per_segment=1,
            currency="USD",
            indexes=indexes,
        )

    return write, reads


def _whose(runtime: Any, who: Principal, number: str) -> dict[str, Any]:
    """What an opt-out and a consent both name: whose number, and when."""
    return {
        "account_id": who.account_id,
        "mode": who.mode,
        "phone": number,
        "phone_index": runtime.vault.blind_index(who.account_id, number),
        "source": "test",
        "now": runtime.now(),
    }


def opt_out(runtime: Any, who: Principal, number: str) -> Write:
    """An opt-out, queued undeclared (it writes the suppression list)."""

    def write(conn: sa.Connection) -> bool:
        return compliance.suppress(
            conn, runtime.vault, reason=compliance.OPT_OUT, **_whose(runtime, who, number)
        )

    return write, None


def consent_to_marketing(runtime: Any, who: Principal, number: str) -> Write:
    """A marketing consent, queued undeclared (it writes the consents)."""

    def write(conn: sa.Connection) -> str:
        return compliance.grant_consent(
            conn,
            runtime.vault,
            purpose="marketing",
            evidence=None,
            actor=Actor("test"),
            **_whose(runtime, who, number),
        )

    return write, None


def marketing_to(runtime: Any, who: Principal, number: str) -> Write:
    return send_to(runtime, who, number, "marketing")


def error_codes(results: list[Any]) -> list[str | None]:
    """Each send's recipient's error code (its status may be queued or, in the recipient's
    quiet hours, scheduled: the time of day of the run decides)."""
    return [
        r.response["recipients"][0].get("errorCode") for r in results if isinstance(r, SendResult)
    ]


def in_one_batch(runtime: Any, writes: list[Write]) -> list[Any]:
    """Run ``writes`` as one group-committed batch, in order: the writer is held busy while
    they are queued, so its next batch takes them all."""
    writer = runtime.db.writer
    release, busy = threading.Event(), threading.Event()

    def hold(_conn: sa.Connection) -> None:
        busy.set()
        release.wait(10)

    held = writer.submit(hold)
    busy.wait(10)
    futures: list[Future[Any]] = [writer.submit(fn, reads) for fn, reads in writes]
    release.set()
    held.result(10)
    return [future.result(10) for future in futures]


def statuses(results: list[Any]) -> list[str]:
    return [r.response["recipients"][0]["status"] for r in results if isinstance(r, SendResult)]


@pytest.fixture
def no_lookups_one_by_one(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the suppression lookups made send by send (not read ahead)."""
    calls: list[int] = []
    original = _gate._present

    def counted(*args: Any, **kwargs: Any) -> set[str]:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_gate, "_present", counted)
    return calls


def test_sends_in_one_batch_read_suppressions_together_and_correctly(
    runtime: Any, account: str, no_lookups_one_by_one: list[int]
) -> None:
    """Two sends in one batch, one to an opted-out number: that one alone is rejected, and
    neither send looked its recipient up on its own."""
    live = principal(account)
    in_one_batch(runtime, [opt_out(runtime, live, OPTED_OUT)])
    no_lookups_one_by_one.clear()
    results = in_one_batch(
        runtime,
        [
            send_to(runtime, live, OPTED_OUT),
            send_to(runtime, live, WELCOME),
            send_to(runtime, live, OPTED_OUT),
        ],
    )
    assert statuses(results) == ["rejected", "queued", "rejected"]
    assert [r.response["recipients"][0].get("errorCode") for r in results] == [
        "recipient_opted_out",
        None,
        "recipient_opted_out",
    ]
    assert no_lookups_one_by_one == []


def test_a_batch_of_sends_keeps_each_mode_and_account_apart(
    runtime: Any, account: str, no_lookups_one_by_one: list[int]
) -> None:
    """A live opt-out blocks neither a test-mode send nor another account's send to the same
    number, when all of them are read ahead in one batch."""
    other = runtime.db.write(lambda conn: create_account(conn, "other", runtime.now()))
    in_one_batch(runtime, [opt_out(runtime, principal(account), OPTED_OUT)])
    results = in_one_batch(
        runtime,
        [
            send_to(runtime, principal(account, "test"), OPTED_OUT),
            send_to(runtime, principal(other), OPTED_OUT),
            send_to(runtime, principal(account), OPTED_OUT),
        ],
    )
    assert statuses(results) == ["queued", "queued", "rejected"]


def test_an_opt_out_in_the_batch_applies_to_the_sends_after_it(
    runtime: Any, account: str, no_lookups_one_by_one: list[int]
) -> None:
    """A batch mixing sends and an opt-out reads nothing ahead: the send after the opt-out
    sees it, as if each write had run alone."""
    live = principal(account)
    results = in_one_batch(
        runtime,
        [
            send_to(runtime, live, OPTED_OUT),
            opt_out(runtime, live, OPTED_OUT),
            send_to(runtime, live, OPTED_OUT),
            send_to(runtime, live, WELCOME),
        ],
    )
    assert results[1] is True
    assert statuses(results) == ["queued", "rejected", "queued"]
    assert len(no_lookups_one_by_one) == 3


def test_marketing_sends_in_one_batch_read_consents_together_and_correctly(
    runtime: Any, account: str, no_lookups_one_by_one: list[int]
) -> None:
    """Marketing sends read consents ahead with the suppressions: only the consented number
    in the consent's own mode goes ahead, and no send looked anything up on its own."""
    live = principal(account)
    in_one_batch(runtime, [consent_to_marketing(runtime, live, WELCOME)])
    no_lookups_one_by_one.clear()
    results = in_one_batch(
        runtime,
        [
            marketing_to(runtime, live, WELCOME),
            marketing_to(runtime, live, OPTED_OUT),  # no consent
            marketing_to(runtime, principal(account, "test"), WELCOME),  # a live consent
            send_to(runtime, live, OPTED_OUT),  # transactional: needs none
        ],
    )
    assert error_codes(results) == [None, "consent_required", "consent_required", None]
    assert no_lookups_one_by_one == []


def test_a_consent_in_the_batch_applies_to_the_sends_after_it(
    runtime: Any, account: str, no_lookups_one_by_one: list[int]
) -> None:
    live = principal(account)
    results = in_one_batch(
        runtime,
        [
            marketing_to(runtime, live, WELCOME),
            consent_to_marketing(runtime, live, WELCOME),
            marketing_to(runtime, live, WELCOME),
        ],
    )
    assert error_codes(results) == ["consent_required", None]
    assert no_lookups_one_by_one  # read send by send, in turn


@pytest.mark.parametrize("count", [0, 1, 2, 40])
def test_lookups_made_on_their_own_answer_for_any_number_of_recipients(
    runtime: Any, account: str, count: int
) -> None:
    """Outside a batch's read-ahead (the worker's recheck, a lone write): one point lookup,
    or one list lookup for several, with the same answers."""
    live = principal(account)
    numbers = [f"+2567010{n:05d}" for n in range(count)]
    blocked = set(numbers[::3])
    in_one_batch(runtime, [opt_out(runtime, live, number) for number in blocked])
    in_one_batch(runtime, [consent_to_marketing(runtime, live, number) for number in blocked])
    index = {runtime.vault.blind_index(account, number): number for number in numbers}

    def read(conn: sa.Connection) -> tuple[set[str], set[str], set[str]]:
        indexes = list(index)
        return (
            _gate.suppressed_indexes(conn, account, "live", indexes),
            _gate.consented_indexes(conn, account, "live", indexes, "marketing"),
            _gate.suppressed_indexes(conn, account, "test", indexes),
        )

    suppressed, consented, other_mode = runtime.db.read(read)
    assert {index[i] for i in suppressed} == blocked
    assert {index[i] for i in consented} == blocked
    assert other_mode == set()
