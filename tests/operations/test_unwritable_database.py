"""A database that answers but cannot take writes (a full disk, a read-only server):
``/readyz`` says so, sends get a clean 503, nothing accepted is lost, and all of it
recovers once writes work again.

The disk is a real small file system (a tmpfs mounted for the test, which needs root: CI runs
as root; elsewhere the test skips with the reason, and under CI=true it fails instead).
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from msgine.server.runtime import Runtime
from msgine.server.storage import WriteProbe
from msgine.server.storage._tables import messages
from msgine.server.worker import Worker
from support import FINAL, IN_CI, PG_ADMIN_URL, make_settings, serve_in_process

pytestmark = pytest.mark.asyncio


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: big enough for the gateway's files, small enough to fill at once."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs (needs root): {done.stderr.strip()}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: CI runs as root)")
        pytest.skip(message)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free byte of ``disk``; the file to delete to give them back."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        while _write_block(out):
            pass
    return filler


def _write_block(out: Any) -> bool:
    """False once the disk is full."""
    try:
        out.write(b"\0" * 65536)
        out.flush()
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        return False
    return True


async def _expect_refused(client: Any, headers: dict[str, str]) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert ready.json() == {"status": "unavailable", "database": "unwritable"}
    sent = await client.post(
        "/api/v1/messages/sms", json={"to": "+256701521269", "message": "x"}, headers=headers
    )
    assert sent.status_code == 503, sent.text
    assert sent.json()["error"]["code"] == "service_unavailable"
    assert sent.headers["retry-after"] == "1"


async def _send(client: Any, headers: dict[str, str], n: int) -> set[str]:
    ids = set()
    for i in range(n):
        r = await client.post(
            "/api/v1/messages/sms",
            json={"to": f"+2567015{i:05d}", "message": "hi"},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        ids.add(r.json()["id"])
    return ids


async def _all_delivered(runtime: Runtime, ids: set[str]) -> None:
    worker = Worker(runtime)
    for _ in range(50):
        if not await worker.run_once():
            break
    rows = runtime.db.read(
        lambda conn: conn.execute(sa.select(messages.c.id, messages.c.status)).all()
    )
    assert {row.id for row in rows} == ids  # everything accepted is stored, nothing else
    assert {row.status for row in rows} <= FINAL


@contextlib.asynccontextmanager
async def _gateway(runtime: Runtime) -> Any:
    async with serve_in_process(runtime) as (app, client, first):
        app.state.write_probe = WriteProbe(runtime.db, ttl=0)  # no cached answer in a test
        yield client, {"X-Api-Key": first.secret}


async def test_full_disk_makes_readyz_unready_and_sends_a_clean_503(
    tmp_path: Path, small_disk: Path
) -> None:
    runtime = Runtime.open(make_settings(tmp_path, data_dir=small_disk / "data"))
    try:
        async with _gateway(runtime) as (client, headers):
            accepted = await _send(client, headers, 5)
            assert (await client.get("/readyz")).status_code == 200
            filler = _fill(small_disk)
            for _ in range(3):  # refused every time, not only until a cache fills
                await _expect_refused(client, headers)
            filler.unlink()
            assert (await client.get("/readyz")).status_code == 200
            accepted |= await _send(client, headers, 5)
        await _all_delivered(runtime, accepted)
    finally:
        runtime.close()


def _read_only(name: str, on: bool) -> None:
    """Make PostgreSQL database ``name`` refuse writes (as a standby or a full-disk guard
    would), and drop its sessions so the gateway's connections see the change."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        value = "on" if on else "off"
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


async def test_read_only_postgresql_makes_readyz_unready(tmp_path: Path, postgres_url: str) -> None:
    runtime = Runtime.open(make_settings(tmp_path, postgres_url))
    name = postgres_url.rsplit("/", 1)[1]
    try:
        async with _gateway(runtime) as (client, headers):
            accepted = await _send(client, headers, 3)
            _read_only(name, True)
            try:
                for _ in range(3):
                    await _expect_refused(client, headers)
            finally:
                _read_only(name, False)
            assert (await client.get("/readyz")).status_code == 200
            accepted |= await _send(client, headers, 3)
        await _all_delivered(runtime, accepted)
    finally:
        runtime.close()
