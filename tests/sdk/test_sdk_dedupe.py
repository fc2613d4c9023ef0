"""Dedupe stores: memory, real Redis, SQLite and real PostgreSQL; each id is processed once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sdk_helpers import POSTGRES_URL, REDIS_URL, unavailable

from msgine.webhooks import (
    DedupeStore,
    Deduplicator,
    MemoryDedupeStore,
    RedisDedupeStore,
    SqlDedupeStore,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def exercise(store: DedupeStore) -> None:
    """The contract every store meets."""
    dedupe = Deduplicator(store)
    event = f"evt_{uuid.uuid4().hex}"
    with dedupe.processing(event) as first:
        assert first is True
        with dedupe.processing(event) as concurrent:
            assert concurrent is False  # claimed by someone else
    with dedupe.processing(event) as again:
        assert again is False  # done
    other = f"evt_{uuid.uuid4().hex}"

    def failing_handler() -> None:
        with dedupe.processing(other) as claimed:
            assert claimed
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        failing_handler()
    with dedupe.processing(other) as retried:
        assert retried is True  # the failed attempt released its claim


def test_memory_store_contract() -> None:
    exercise(MemoryDedupeStore())


def test_memory_store_is_bounded_and_expires() -> None:
    clock = Clock()
    store = MemoryDedupeStore(max_entries=3, ttl=60, lease=10, clock=clock)
    for n in range(5):
        assert store.claim(f"e{n}")
        store.complete(f"e{n}")
    assert len(store) == 3
    assert store.claim("e0")  # evicted, so claimable again
    assert not store.claim("e4")
    clock.now += 61
    assert store.claim("e4")


def test_memory_lease_expires_so_a_crashed_claim_is_retried() -> None:
    clock = Clock()
    store = MemoryDedupeStore(ttl=60, lease=10, clock=clock)
    assert store.claim("e")
    assert not store.claim("e")
    clock.now += 11
    assert store.claim("e")


def test_memory_store_one_winner_among_threads() -> None:
    store = MemoryDedupeStore()
    wins: list[bool] = []
    threads = [threading.Thread(target=lambda: wins.append(store.claim("same"))) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1


@pytest.fixture
def redis_store() -> Iterator[RedisDedupeStore]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis at " + REDIS_URL, exc)
    prefix = f"msgine-test:{uuid.uuid4().hex}:"
    yield RedisDedupeStore(client, ttl=60, prefix=prefix, lease=30)
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)
    client.close()


def test_redis_store_contract(redis_store: RedisDedupeStore) -> None:
    exercise(redis_store)


def test_redis_store_uses_ttls(redis_store: RedisDedupeStore) -> None:
    client = redis_store._redis
    assert redis_store.claim("e")
    assert 0 < client.ttl(redis_store.prefix + "e") <= 30
    redis_store.complete("e")
    assert 30 < client.ttl(redis_store.prefix + "e") <= 60
    redis_store.release("e")  # a finished id is never released
    assert not redis_store.claim("e")


def test_redis_store_from_url(redis_store: RedisDedupeStore) -> None:
    store = RedisDedupeStore(REDIS_URL, prefix=redis_store.prefix)
    assert store.claim("from-url")
    assert not redis_store.claim("from-url")


def sql_stores(url: str) -> tuple[SqlDedupeStore, SqlDedupeStore, Clock]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        unavailable("PostgreSQL", exc)
    table = f"dedupe_{uuid.uuid4().hex[:12]}"
    clock = Clock()
    first = SqlDedupeStore(engine, table, ttl=60, lease=10, clock=clock)
    second = SqlDedupeStore(engine, table, ttl=60, lease=10, clock=clock)  # another process
    return first, second, clock


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/dedupe.db"
    return POSTGRES_URL


def test_sql_store_contract(sql_url: str) -> None:
    first, second, clock = sql_stores(sql_url)
    exercise(first)
    assert first.claim("shared")
    assert not second.claim("shared")
    clock.now += 11  # the lease of a crashed claimant runs out
    assert second.claim("shared")
    second.complete("shared")
    clock.now += 30
    assert not first.claim("shared")
    clock.now += 31
    assert first.purge_expired() >= 1
    assert first.claim("shared")
    first._table.drop(first._engine)
