"""Test helpers shared by all test folders: service checks, settings, clocks, gateway processes.

Import as ``from support import ...`` (the tests folder is on sys.path under pytest).
"""

from __future__ import annotations

import atexit
import base64
import concurrent.futures
import contextlib
import importlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

IN_CI = os.environ.get("CI") == "true"
PG_ADMIN_URL = os.environ.get(
    "MSGINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
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


def require_extra(module: str, extra: str) -> Any:
    """Import an optional integration's module, or skip (fail under CI, which installs it)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"{module} is not installed: pip install -e '.[{extra}]' to run this test"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: .ci/run installs every extra)")
        pytest.skip(message)


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


def make_settings(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Any:
    from msgine.server.config import Settings

    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "master_key": MASTER_KEY,
        "simulator_dlr_delay": 0,
        "webhook_allow_private": True,
        # Development settings, like allow_private: tests aim webhooks at local ports (9 is an
        # address nothing answers on). The SSRF tests restore the deployed defaults.
        "webhook_allowed_ports": "1-65535",
        "worker_poll_interval": 0.05,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def settings_env(settings: Any, **extra: str) -> dict[str, str]:
    """The environment a CLI process needs to open the same database as ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSGINE_")}
    env["MSGINE_DATA_DIR"] = str(settings.data_dir)
    if settings.master_key is not None:
        env["MSGINE_MASTER_KEY"] = settings.master_key.get_secret_value()
    if settings.database_url is not None:
        env["MSGINE_DATABASE_URL"] = settings.database_url.get_secret_value()
    env.update(extra)
    return env


_pg_counter = iter(range(1_000_000))


def _pg_exec(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def _pg_url(name: str) -> str:
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


@contextlib.contextmanager
def postgres_database(*, migrated: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL database (its URL), dropped afterwards: empty, or with ``migrated``
    a copy of a template at the newest schema (see ``_migrated``)."""
    name = f"msgine_t_{RUN_ID}_{os.getpid()}_{next(_pg_counter)}"
    template = f' TEMPLATE "{_migrated("postgresql")}"' if migrated else ""
    _pg_exec(f'CREATE DATABASE "{name}"{template}')
    try:
        yield _pg_url(name)
    finally:
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_sqlite(settings: Any) -> None:
    """Give ``settings`` a SQLite file already at the newest schema (see ``_migrated``), made
    as the gateway makes its own: a private directory and an owner-only file."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = Path(_sqlite_file(settings.sqlalchemy_url))
    shutil.copyfile(_migrated("sqlite"), target)
    target.chmod(0o600)


def _sqlite_file(url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(url).database)


_templates: dict[str, str] = {}


def _migrated(kind: str) -> str:
    """A database at the newest schema, migrated once per test process, for tests to start
    from a copy of: the migrations take about 0.5-0.75 s a database, on each of the hundreds of
    tests that open one. A SQLite file's path, or a PostgreSQL template database's name
    (dropped when the process ends). Tests of the migrations themselves start empty
    (``empty_database``)."""
    found = _templates.get(kind)
    if found is not None:
        return found
    from msgine.server.storage import Database

    # The URL as the gateway derives it from its settings: the same file name, the same driver.
    if kind == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="msgine-schema-"))
        atexit.register(shutil.rmtree, directory, True)
        url = make_settings(directory).sqlalchemy_url
        found = _sqlite_file(url)
        Path(found).parent.mkdir(mode=0o700)
    else:
        found = f"msgine_schema_{RUN_ID}_{os.getpid()}"
        _pg_exec(f'CREATE DATABASE "{found}"')
        atexit.register(_pg_exec, f'DROP DATABASE IF EXISTS "{found}" WITH (FORCE)')
        url = make_settings(Path(tempfile.gettempdir()), _pg_url(found)).sqlalchemy_url
    db = Database(url)
    try:
        db.migrate()
    finally:
        db.close()  # a template must have no connection when it is copied
    _templates[kind] = found
    return found


def run_msgine(
    env: dict[str, str], *args: str, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``msgine ARGS`` in a real process without a terminal, as a person or a script runs it;
    never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "msgine", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
        result = run_msgine(self.env, *args)
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
            "MSGINE_WEBHOOK_ALLOWED_PORTS": "1-65535",
            "MSGINE_WORKER_POLL_INTERVAL": "0.05",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if database_url:
        env["MSGINE_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def start_gateway(
    env: dict[str, str],
    *,
    cwd: Path,
    port: int | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 30,
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
    lines: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise AssertionError(
                f"gateway exited: {(cwd / f'gateway-{port}.log').read_text()[-2000:]}"
            )
        time.sleep(0.1)
    else:
        process.kill()
        raise AssertionError("gateway did not become healthy")
    # A first start prints the key before the server starts: give the reader thread up to 0.2 s
    # to have it (a restart prints none and waits the whole 0.2 s).
    for _ in range(20):
        key = next((k for k in map(str.strip, list(lines)) if k.startswith("msgine_test_")), "")
        if key:
            break
        time.sleep(0.01)
    return Gateway(
        base_url=f"http://127.0.0.1:{port}/api/v1",
        api_key=key,
        env=env,
        process=process,
        port=port,
        root=str(cwd),
    )


FINAL = {"delivered", "failed", "rejected"}
# Load tests send bursts from one key and address; the default limits would refuse them.
NO_LIMITS = {
    "MSGINE_RATE_LIMIT_PER_KEY": "1000000/minute",
    "MSGINE_RATE_LIMIT_PER_ACCOUNT": "1000000/minute",
    "MSGINE_RATE_LIMIT_PER_IP": "1000000/minute",
}


T = TypeVar("T")


def wait_until(
    check: Callable[[], T], what: str = "the condition", within: float = 30.0, every: float = 0.05
) -> T:
    """Poll ``check`` every ``every`` seconds until it returns something true; return that.
    A check that calls a gateway's API with one key should poll no faster than its rate limit."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def send_many(
    gw: Gateway, count: int, prefix: str = "m", *, recipients: int = 1, **fields: Any
) -> list[str]:
    """Send ``count`` messages (each to ``recipients`` numbers of its own, with any other body
    ``fields``) from 16 threads; the ids of the 201s."""

    def one(n: int) -> str | None:
        to = [f"+2567015{n * recipients + i:05d}" for i in range(recipients)]
        try:
            r = httpx.post(
                f"{gw.base_url}/messages/sms",
                json={"to": to, "message": f"{prefix}{n}", **fields},
                headers={"Authorization": f"Bearer {gw.api_key}"},
                timeout=10,
            )
        except httpx.HTTPError:
            return None
        return str(r.json()["id"]) if r.status_code == 201 else None

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        return [i for i in pool.map(one, range(count)) if i]


def wait_final(gw: Gateway, ids: list[str], timeout: float = 60) -> dict[str, str]:
    """Each message's status once all are final (through the API)."""
    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    with httpx.Client(headers={"X-Api-Key": gw.api_key}, timeout=10) as client:
        while time.monotonic() < deadline:
            for mid in ids:
                if statuses.get(mid) not in FINAL:
                    statuses[mid] = client.get(f"{gw.base_url}/messages/{mid}").json()["status"]
            if all(s in FINAL for s in statuses.values()) and len(statuses) == len(ids):
                return statuses
            time.sleep(0.2)
    raise AssertionError(f"not final: {[s for s in statuses.values() if s not in FINAL][:5]}")


@contextlib.asynccontextmanager
async def serve_in_process(runtime: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient, Any]]:
    """(app, client, first key) for an opened runtime: the default account and its test key,
    the app with its lifespan running, and an httpx client speaking to it without a socket."""
    from msgine.server.api import create_app
    from msgine.server.runtime import ensure_default_account

    first = ensure_default_account(runtime)
    assert first is not None
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        app.router.lifespan_context(app),
    ):
        yield app, client, first


def write_concurrently(runtime: Any, write_for: Any, count: int) -> list[Any]:
    """Submit ``write_for(n)`` for n in range(count) from as many threads at once, so the
    group-commit writer batches them; each result, or the exception its write raised."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def submit(n: int) -> None:
        fn = write_for(n)
        barrier.wait()
        try:
            results[n] = runtime.db.write(fn)
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` as a fixed author, ignoring the machine's own git configuration."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, env=env, check=True, text=True
    )
    return done.stdout.strip()


def sqlite_plan(runtime: Any, sql: str, params: tuple[Any, ...] = ()) -> list[str]:
    """The steps of SQLite's plan for ``sql`` (the detail column of EXPLAIN QUERY PLAN)."""
    rows = runtime.db.read(
        lambda conn: conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
    )
    return [row[3] for row in rows]
