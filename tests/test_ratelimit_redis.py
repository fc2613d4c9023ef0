"""Rate-limiting engine on real Redis: shared counts, opaque keys, and Redis going away."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis

from msgine.server.ratelimit import RateLimiter, opaque_identity

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("MSGINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
Events = list[tuple[str, dict[str, object]]]
NUMBER = "+256701521269"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis[bytes]]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        _unavailable(f"Redis does not answer at {REDIS_URL}")
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis[bytes]) -> Iterator[str]:
    value = f"msgine-test-{uuid.uuid4().hex}"
    yield value
    keys = list(redis_client.scan_iter(match=f"*{value}*"))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
async def make_limiter(prefix: str) -> AsyncIterator[Callable[..., RateLimiter]]:
    made: list[RateLimiter] = []

    def make(url: str | None = REDIS_URL, **kwargs: object) -> RateLimiter:
        limiter = RateLimiter(url, key_prefix=prefix, **kwargs)  # type: ignore[arg-type]
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


def _recorder(events: Events) -> Callable[[str, dict[str, object]], None]:
    return lambda name, fields: events.append((name, fields))


async def test_two_processes_share_one_count(make_limiter: Callable[..., RateLimiter]) -> None:
    a, b = make_limiter(), make_limiter()
    for _ in range(3):
        assert (await a.hit("key", "key_shared", "5/minute")).allowed
    for _ in range(2):
        assert (await b.hit("key", "key_shared", "5/minute")).allowed
    assert not (await a.hit("key", "key_shared", "5/minute")).allowed
    refused = await b.hit("key", "key_shared", "5/minute")
    assert not refused.allowed
    assert refused.retry_after >= 1
    assert (await a.hit("key", "key_other", "5/minute")).allowed
    assert not a.degraded


async def test_strategies_do_not_clash_on_one_identity(
    make_limiter: Callable[..., RateLimiter],
) -> None:
    for strategy in ("moving-window", "sliding-window", "fixed-window"):
        limiter = make_limiter(strategy=strategy)
        assert (await limiter.hit("account", "acc_1", "5/minute")).allowed
        assert not limiter.degraded  # a WRONGTYPE error would have degraded it


async def test_lockout_is_shared(make_limiter: Callable[..., RateLimiter]) -> None:
    a = make_limiter(auth_failure_limit="3/minute", lockout_seconds=60)
    b = make_limiter(auth_failure_limit="3/minute", lockout_seconds=60)
    await a.record_auth_failure("203.0.113.7")
    await b.record_auth_failure("203.0.113.7")
    assert await b.is_locked_out("203.0.113.7") == 0
    await a.record_auth_failure("203.0.113.7")
    assert await b.is_locked_out("203.0.113.7") > 0
    assert await b.is_locked_out("203.0.113.8") == 0


async def test_recipient_numbers_never_reach_redis_keys(
    make_limiter: Callable[..., RateLimiter], redis_client: redis.Redis[bytes], prefix: str
) -> None:
    limiter = make_limiter()
    identity = opaque_identity(NUMBER, b"blind-index-key-for-tests-only!!")
    for _ in range(3):
        await limiter.hit("recipient", identity, "2/hour")
    with pytest.raises(ValueError, match="opaque"):
        await limiter.hit("recipient", NUMBER, "2/hour")
    keys = [k.decode() for k in redis_client.scan_iter(match=f"{prefix}*")]
    assert any(identity in k for k in keys)
    digits = NUMBER.lstrip("+")
    assert not [k for k in keys if digits in k or digits[-9:] in k]


async def test_dead_redis_falls_back_to_local_limits(
    make_limiter: Callable[..., RateLimiter],
) -> None:
    events: Events = []
    limiter = make_limiter("redis://127.0.0.1:1/0", security_log=_recorder(events))
    decisions = [await limiter.hit("key", "key_a", "5/minute") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert limiter.degraded
    assert not await limiter.healthy()
    degraded = [e for e in events if e[0] == "ratelimit_storage_degraded"]
    assert len(degraded) == 1
    assert "127.0.0.1" not in repr(events)


async def test_dead_redis_makes_address_limits_and_lockouts_stricter(
    make_limiter: Callable[..., RateLimiter],
) -> None:
    limiter = make_limiter(
        "redis://127.0.0.1:1/0", auth_failure_limit="6/minute", degraded_divisor=3
    )
    allowed = [(await limiter.hit("ip", "198.51.100.4", "6/minute")).allowed for _ in range(3)]
    assert allowed == [True, True, False]
    assert (await limiter.hit("key", "key_a", "6/minute")).remaining == 5  # other namespaces
    await limiter.record_auth_failure("198.51.100.4")
    assert await limiter.is_locked_out("198.51.100.4") == 0
    await limiter.record_auth_failure("198.51.100.4")
    assert await limiter.is_locked_out("198.51.100.4") > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _PrivateRedis:
    """A throw-away redis-server that a test can stop and start again on the same port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):  # readiness wait, not an assertion on timing
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@pytest.fixture
def private_redis() -> Iterator[_PrivateRedis]:
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")
    server = _PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def limiter_on_private(
    private_redis: _PrivateRedis, prefix: str
) -> AsyncIterator[tuple[RateLimiter, Events]]:
    events: Events = []
    limiter = RateLimiter(
        private_redis.url,
        key_prefix=prefix,
        security_log=_recorder(events),
        auth_failure_limit="2/minute",
        lockout_seconds=60,
        probe_interval=3600,  # recovery is driven by healthy() below, not by the clock
    )
    yield limiter, events
    await limiter.aclose()


async def test_redis_going_away_and_coming_back(
    private_redis: _PrivateRedis, limiter_on_private: tuple[RateLimiter, Events]
) -> None:
    limiter, events = limiter_on_private
    for _ in range(2):
        assert (await limiter.hit("key", "key_a", "5/minute")).allowed
    assert not limiter.degraded

    private_redis.stop()
    for _ in range(5):  # local counts start afresh: 5 more within the per-process limit
        assert (await limiter.hit("key", "key_a", "5/minute")).allowed
    assert not (await limiter.hit("key", "key_a", "5/minute")).allowed
    assert [e[0] for e in events if e[0].startswith("ratelimit_storage")] == [
        "ratelimit_storage_degraded"
    ]

    private_redis.start()  # an empty Redis, as after a restart without persistence
    assert await limiter.healthy()
    assert not limiter.degraded
    assert [e[0] for e in events if e[0].startswith("ratelimit_storage")] == [
        "ratelimit_storage_degraded",
        "ratelimit_storage_recovered",
    ]
    assert (await limiter.hit("key", "key_a", "5/minute")).remaining == 4
    client = redis.Redis(port=private_redis.port)
    assert any(b"key_a" in k for k in client.scan_iter())
    client.close()


async def test_lockout_survives_redis_going_away(
    private_redis: _PrivateRedis, limiter_on_private: tuple[RateLimiter, Events]
) -> None:
    limiter, _ = limiter_on_private
    for _ in range(2):
        await limiter.record_auth_failure("203.0.113.9")
    assert await limiter.is_locked_out("203.0.113.9") > 0
    private_redis.stop()
    assert await limiter.is_locked_out("203.0.113.9") > 0
    assert await limiter.is_locked_out("203.0.113.10") == 0


async def test_background_probe_notices_recovery(private_redis: _PrivateRedis, prefix: str) -> None:
    events: Events = []
    limiter = RateLimiter(
        private_redis.url, key_prefix=prefix, security_log=_recorder(events), probe_interval=0
    )
    try:
        private_redis.stop()
        await limiter.hit("key", "key_a", "5/minute")
        assert limiter.degraded
        private_redis.start()
        for _ in range(100):  # each degraded hit may start one probe; wait for its answer
            await limiter.hit("key", "key_a", "5/minute")
            if not limiter.degraded:
                break
            await asyncio.sleep(0.02)
        assert not limiter.degraded
        assert events[-1][0] == "ratelimit_storage_recovered"
    finally:
        await limiter.aclose()


async def test_recovery_under_concurrent_load_switches_back_once(
    private_redis: _PrivateRedis, prefix: str
) -> None:
    """Six clients hit the limiter while Redis restarts. Connections pooled before the restart
    are dead; the gateway must not go back to Redis and fall off again on each of them."""
    events: Events = []
    limiter = RateLimiter(
        private_redis.url, key_prefix=prefix, security_log=_recorder(events), probe_interval=0.2
    )
    stop = asyncio.Event()

    async def client(n: int) -> None:
        while not stop.is_set():
            await limiter.hit("key", f"key_{n}", "1000000/minute")
            await asyncio.sleep(0.005)

    clients = [asyncio.create_task(client(n)) for n in range(6)]
    try:
        await asyncio.sleep(0.3)  # every client holds a pooled connection to the first server
        private_redis.stop()
        await asyncio.sleep(0.5)
        assert limiter.degraded
        private_redis.start()
        for _ in range(300):  # readiness wait for the probe, not an assertion on timing
            if not limiter.degraded:
                break
            await asyncio.sleep(0.02)
        assert not limiter.degraded
        await asyncio.sleep(1.0)  # the clients keep going on Redis: no fall-back again
        assert not limiter.degraded
    finally:
        stop.set()
        await asyncio.gather(*clients)
        await limiter.aclose()
    changes = [e[0] for e in events if e[0].startswith("ratelimit_storage")]
    assert changes == ["ratelimit_storage_degraded", "ratelimit_storage_recovered"]
