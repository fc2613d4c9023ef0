"""The audit chain's verification state as the console shows it: intact with how many entries
were checked and the head, or the first problem; with an anchor, truncation is found."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from msgine.server.audit import Actor, chain_state, record
from msgine.server.storage._tables import audit_log


def _record(runtime: Any, count: int) -> None:
    now = runtime.now()
    for n in range(count):
        runtime.db.write(
            lambda conn, n=n: record(conn, runtime.vault, Actor("cli:test"), f"test.{n}", now=now)
        )


def test_an_intact_chain_says_how_much_it_checked(runtime: Any) -> None:
    empty = runtime.db.read(lambda conn: chain_state(conn, runtime.vault))
    assert empty.intact and empty.checked == 0 and empty.head is None
    _record(runtime, 3)
    state = runtime.db.read(lambda conn: chain_state(conn, runtime.vault))
    assert state.intact and state.checked == 3 and not state.anchored
    assert state.head is not None and state.head.seq == 3


def test_an_edit_or_a_truncation_is_the_first_problem(runtime: Any) -> None:
    _record(runtime, 4)
    head = runtime.db.read(lambda conn: chain_state(conn, runtime.vault)).head
    runtime.db.write(
        lambda conn: conn.execute(
            sa.update(audit_log).where(audit_log.c.seq == 2).values(action="test.edited")
        )
    )
    state = runtime.db.read(lambda conn: chain_state(conn, runtime.vault))
    assert not state.intact and state.checked == 1
    assert state.problem is not None and state.problem.seq == 2
    assert state.problem.reason == "hash_mismatch"

    runtime.db.write(lambda conn: conn.execute(sa.delete(audit_log).where(audit_log.c.seq >= 2)))
    unanchored = runtime.db.read(lambda conn: chain_state(conn, runtime.vault))
    assert unanchored.intact  # a shorter chain verifies: only an anchor reveals it
    assert head is not None
    anchored = runtime.db.read(lambda conn: chain_state(conn, runtime.vault, head))
    assert anchored.anchored and not anchored.intact
    assert anchored.problem is not None and anchored.problem.reason == "truncated"
