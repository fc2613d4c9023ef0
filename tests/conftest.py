"""Shared fixtures: both storage backends, an in-process API, and a real gateway subprocess.

PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are used for real. Where they do not
answer, their tests skip with the reason, except under CI=true, where .ci/run has started them
and a missing service is a failure, so a skip can never hide one.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import (
    REDIS_URL,
    FakeClock,
    Gateway,
    gateway_env,
    make_settings,
    postgres_database,
    require_service,
    seed_sqlite,
    serve_in_process,
    start_gateway,
)

# --- test order ---------------------------------------------------------------------------


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Three test processes per two cores for ``-n logical``: many tests wait on a gateway
    subprocess, a browser or a socket, and with one process per core the cores sat idle for a
    third of the run (measured on 2 cores: 1.3 of them busy on average)."""
    return max(2, (os.cpu_count() or 1) * 3 // 2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long modules first: those marked ``slow`` (gateway subprocesses, a browser, kill -9
    runs), then the others, most tests first. xdist hands whole modules out in this order
    (``--dist loadfile --no-loadscope-reorder`` in pyproject), so the long ones start at once
    and the many short ones fill in the end. xdist's own order (most tests first) would start
    the slow modules, which have few tests, last, each then running with a worker left idle."""
    module = {item: item.nodeid.split("::", 1)[0] for item in items}
    tests = Counter(module.values())
    slow = {module[item] for item in items if item.get_closest_marker("slow")}
    # A stable sort on a key per module: every module's tests stay together, in their order.
    items.sort(key=lambda item: (module[item] not in slow, -tests[module[item]]))


# --- logging ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def readable_logs() -> Iterator[None]:
    """Logs as an operator reads them (key=value on stderr, debug included), in every test.

    Tests read the log from ``capsys`` or ``caplog``; logging is process-wide, so without this
    what they see would depend on which test ran before them in the same test process. A test
    that wants another configuration calls ``configure_logging`` itself (it replaces this one).
    """
    from msgine.server.logging import configure_logging, reset_logging

    configure_logging(json=False, level="DEBUG")
    yield
    reset_logging()


# --- clocks -------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- databases ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return True


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest, postgres_available: bool) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards: at the newest schema, or
    empty for a test marked ``empty_database``."""
    with postgres_database(migrated=_starts_migrated(request)) as url:
        yield url


def _starts_migrated(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("empty_database") is None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Each test using this runs twice: embedded SQLite, then a real PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str | None) -> Any:
    """Settings on a database at the newest schema (empty for ``empty_database`` tests)."""
    made = make_settings(tmp_path, database_url)
    if database_url is None and _starts_migrated(request):
        seed_sqlite(made)
    return made


@pytest.fixture
def runtime(settings: Any, clock: FakeClock) -> Iterator[Any]:
    from msgine.server.runtime import Runtime

    rt = Runtime.open(settings, clock=clock)
    try:
        yield rt
    finally:
        rt.close()


# --- the in-process API -------------------------------------------------------------------


@dataclass
class Api:
    """An app on an opened runtime, its HTTP client, a worker to drive by hand, and a key."""

    runtime: Any
    app: Any
    client: httpx.AsyncClient
    worker: Any
    account_id: str
    key: str = field(repr=False)

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def new_key(self, **kwargs: Any) -> str:
        from msgine.server.keys import create_key

        kwargs.setdefault("account_id", self.account_id)
        now = self.runtime.now()
        new = self.runtime.db.write(
            lambda conn: create_key(conn, self.runtime.vault, now=now, **kwargs)
        )
        return str(new.secret)

    def new_account(self, name: str = "other") -> tuple[str, str]:
        from msgine.server.accounts import create_account

        account_id = self.runtime.db.write(
            lambda conn: create_account(conn, name, self.runtime.now())
        )
        return account_id, self.new_key(account_id=account_id)

    async def send(self, key: str | None = None, **body: Any) -> httpx.Response:
        body.setdefault("to", "+256701521269")
        body.setdefault("message", "Hello from MsGine")
        return await self.client.post("/api/v1/messages/sms", json=body, headers=self.headers(key))

    async def drain(self, rounds: int = 50) -> None:
        """Run the worker (and every registered loop's one-shot step) until nothing is due."""
        for _ in range(rounds):
            done = await self.worker.run_once()
            extra = 0
            for step in getattr(self.app.state, "drain_steps", []):
                extra += await step()
            if done == 0 and extra == 0:
                return


@pytest.fixture
def every_event_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event stored, as if a listen session followed each mode (deliveries only to real
    endpoints): for tests about which events a change raises and what they say, not about
    who receives them (tests/webhooks/test_webhooks_audience.py covers that)."""
    import dataclasses

    from msgine.server import events

    real = events.audience

    def heard(*args: Any, **kwargs: Any) -> events.Audience:
        return dataclasses.replace(real(*args, **kwargs), listened=True)

    monkeypatch.setattr(events, "audience", heard)


@pytest.fixture
async def api(runtime: Any) -> AsyncIterator[Api]:
    from msgine.server.worker import Worker

    async with serve_in_process(runtime) as (app, client, first):
        yield Api(
            runtime=runtime,
            app=app,
            client=client,
            worker=Worker(runtime),
            account_id=first.record["account_id"],
            key=first.secret,
        )


# --- a real gateway subprocess ------------------------------------------------------------


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A real ``msgine serve`` subprocess on SQLite, with its first test key (all scopes)."""
    gw = start_gateway(gateway_env(tmp_path), cwd=tmp_path)
    assert gw.api_key, "the first start must print a test key"
    try:
        yield gw
    finally:
        gw.stop()
