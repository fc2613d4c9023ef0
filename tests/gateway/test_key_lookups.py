"""Key lookups that arrive together are answered together: on PostgreSQL the point-read thread
makes the lookups queued at one moment in one statement (``Lookup``), and each request still
gets its own key's answer."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from msgine._keyformat import generate_key
from msgine.server.accounts import create_account
from msgine.server.keys import (
    CREDENTIALS,
    KeyRefused,
    Principal,
    create_key,
    key_digest,
    principal_of,
    revoke_key,
)
from msgine.server.storage import Database, Lookup


async def _held(db: Database, work: Any) -> Any:
    """Run ``work()`` (coroutines that queue point reads) while the point-read thread is busy,
    so that everything they queue waits for its next wake-up, together."""
    busy, release = threading.Event(), threading.Event()

    def hold(_conn: sa.Connection) -> None:
        busy.set()
        release.wait(10)

    held = asyncio.ensure_future(db.aread(hold, point=True))
    await asyncio.to_thread(busy.wait, 10)
    tasks = [asyncio.ensure_future(coro) for coro in work()]
    await asyncio.sleep(0.05)  # every task has queued its read
    release.set()
    await held
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_lookups_queued_together_are_one_statement_with_each_callers_answer(
    postgres_url: str,
) -> None:
    db = Database(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    asked: list[list[int]] = []

    def doubles(conn: sa.Connection, keys: list[int]) -> dict[int, int]:
        asked.append(keys)
        rows = conn.execute(
            sa.text("SELECT n FROM unnest(CAST(:keys AS int[])) AS n"), {"keys": keys}
        )
        return {n: n * 2 for (n,) in rows if n % 3}

    def broken(conn: sa.Connection, keys: list[int]) -> dict[int, int]:
        raise ValueError("no answer")

    wanted = [1, 2, 3, 4, 5, 5, 6]
    try:
        lookup = Lookup(doubles)
        results = await _held(db, lambda: [db.alookup(lookup, n) for n in wanted])
        assert results == [2, 4, None, 8, 10, 10, None]
        assert asked == [[1, 2, 3, 4, 5, 6]]  # one statement, each key once
        failing = Lookup(broken)
        failed = await _held(db, lambda: [db.alookup(failing, n) for n in (1, 2)])
        assert [str(error) for error in failed] == ["no answer", "no answer"]
    finally:
        db.close()


async def test_keys_looked_up_together_each_get_their_own_principal(runtime: Any) -> None:
    """Active keys of two accounts and modes, a revoked key and an unknown one, all at once:
    each request is answered for its own key, and revocation holds."""
    now = runtime.now()

    def make(conn: sa.Connection) -> dict[str, Any]:
        first = create_account(conn, "first", now)
        second = create_account(conn, "second", now)
        keys = {
            "first": create_key(conn, runtime.vault, account_id=first, now=now, mode="live"),
            "second": create_key(conn, runtime.vault, account_id=second, now=now),
            "revoked": create_key(conn, runtime.vault, account_id=first, now=now),
        }
        revoke_key(conn, keys["revoked"].record["id"], now=now, vault=runtime.vault)
        return keys

    made = runtime.db.write(make)
    unknown = generate_key("test")  # well formed, never issued
    presented = [made["first"].secret, made["second"].secret, made["revoked"].secret]
    presented += [unknown, made["first"].secret]

    async def principal(secret: str) -> Principal:
        digest = key_digest(runtime.vault, secret)
        return principal_of(await runtime.db.alookup(CREDENTIALS, digest), digest, None, now)

    if runtime.db.is_sqlite:  # no point-read thread: each lookup runs inline
        results = await asyncio.gather(*(principal(s) for s in presented), return_exceptions=True)
    else:
        results = await _held(runtime.db, lambda: [principal(s) for s in presented])
    first, second, revoked, stranger, again = results
    assert isinstance(first, Principal) and first.key_id == made["first"].record["id"]
    assert first.mode == "live" and again == first
    assert isinstance(second, Principal) and second.key_id == made["second"].record["id"]
    assert second.account_id != first.account_id and second.mode == "test"
    assert isinstance(revoked, KeyRefused) and revoked.reason == "revoked"
    assert isinstance(stranger, KeyRefused) and stranger.reason == "unknown"


def test_a_missing_or_malformed_key_is_refused_before_any_lookup(runtime: Any) -> None:
    for presented, reason in [(None, "missing"), ("", "missing"), ("msgine_test_x", "malformed")]:
        with pytest.raises(KeyRefused) as refused:
            key_digest(runtime.vault, presented)
        assert refused.value.reason == reason
