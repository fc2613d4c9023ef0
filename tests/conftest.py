"""Shared fixtures: both storage backends, an in-process API, and a real gateway subprocess.

PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are used for real. Where they do not
answer, their tests skip with the reason, except under CI=true, where .ci/run has started them
and a missing service is a failure, so a skip can never hide one.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

IN_CI = os.environ.get("CI") == "true"
PG_ADMIN_URL = os.environ.get("MSGINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MSGINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MASTER_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
RUN_ID = secrets.token_hex(4)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if not _answers(host, port):
        message = f"{name} does not answer at {host}:{port}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: .ci/run must start it)")
        pytest.skip(message)


# --- clocks -------------------------------------------------------------------------------


@dataclass
class FakeClock:
    """Real time plus an offset, or frozen: tests move it instead of waiting."""

    offset: timedelta = timedelta(0)
    frozen: datetime | None = None

    def __call__(self) -> datetime:
        return (self.frozen or datetime.now(UTC)) + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += timedelta(**kwargs)

    def freeze(self, at: datetime) -> None:
        self.frozen, self.offset = at, timedelta(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- databases ----------------------------------------------------------------------------


def _pg_exec(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return True


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


_pg_counter = iter(range(1_000_000))


@pytest.fixture
def postgres_url(postgres_available: bool) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"msgine_t_{RUN_ID}_{next(_pg_counter)}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Each test using this runs twice: embedded SQLite, then a real PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


def make_settings(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Any:
    from msgine.server.config import Settings

    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "master_key": MASTER_KEY,
        "simulator_dlr_delay": 0,
        "webhook_allow_private": True,
        "worker_poll_interval": 0.05,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Any:
    return make_settings(tmp_path, database_url)


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

        account_id = self.runtime.db.write(lambda conn: create_account(conn, name, self.runtime.now()))
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
async def api(runtime: Any) -> AsyncIterator[Api]:
    from msgine.server.api import create_app
    from msgine.server.runtime import ensure_default_account
    from msgine.server.worker import Worker

    first = ensure_default_account(runtime)
    assert first is not None
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        async with app.router.lifespan_context(app):
            yield Api(
                runtime=runtime,
                app=app,
                client=client,
                worker=Worker(runtime),
                account_id=first.record["account_id"],
                key=first.secret,
            )


# --- a real gateway subprocess ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gateway:
    base_url: str
    api_key: str = field(repr=False)
    env: dict[str, str] = field(repr=False)
    process: subprocess.Popen[str] = field(repr=False)
    port: int
    root: str

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "msgine", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"msgine {args[0]} failed: {result.stderr}")
        return result

    def stop(self, *, kill: bool = False) -> None:
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=15)


def gateway_env(tmp_path: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSGINE_")}
    env.update(
        {
            "MSGINE_DATA_DIR": str(tmp_path / "gw-data"),
            "MSGINE_SIMULATOR_DLR_DELAY": "0.1",
            "MSGINE_WEBHOOK_ALLOW_PRIVATE": "true",
            "MSGINE_WORKER_POLL_INTERVAL": "0.05",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if database_url:
        env["MSGINE_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def start_gateway(
    env: dict[str, str], *, cwd: Path, port: int | None = None, args: tuple[str, ...] = ()
) -> Gateway:
    """Start ``msgine serve`` as a user would; the first start prints the test key once."""
    port = port or free_port()
    log = open(cwd / f"gateway-{port}.log", "w")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, "-m", "msgine", "serve", "--port", str(port), *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    key = ""
    deadline = time.monotonic() + 30
    assert process.stdout is not None
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"gateway exited: {(cwd / f'gateway-{port}.log').read_text()[-2000:]}")
        time.sleep(0.1)
    else:
        process.kill()
        raise AssertionError("gateway did not become healthy")
    os.set_blocking(process.stdout.fileno(), False)
    output = process.stdout.read() or ""
    for line in output.splitlines():
        if line.strip().startswith("msgine_test_"):
            key = line.strip()
    return Gateway(
        base_url=f"http://127.0.0.1:{port}/api/v1",
        api_key=key,
        env=env,
        process=process,
        port=port,
        root=str(cwd),
    )


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A real ``msgine serve`` subprocess on SQLite, with its first test key (all scopes)."""
    gw = start_gateway(gateway_env(tmp_path), cwd=tmp_path)
    assert gw.api_key, "the first start must print a test key"
    try:
        yield gw
    finally:
        gw.stop()
