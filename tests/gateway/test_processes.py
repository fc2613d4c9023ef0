"""The gateway as users run it: real processes, crashes, several workers, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from msgine.server.storage._tables import recipients, simulator_submissions
from support import NO_LIMITS, Gateway, gateway_env, send_many, start_gateway, wait_final


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))


@pytest.mark.slow
def test_kill_9_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    env = gateway_env(
        tmp_path, MSGINE_SIMULATOR_DLR_DELAY="0.5", MSGINE_JOB_LEASE_SECONDS="3", **NO_LIMITS
    )
    gw = start_gateway(env, cwd=tmp_path)
    accepted = send_many(gw, 60)
    gw.stop(kill=True)  # SIGKILL with jobs queued, submitted and awaiting receipts
    assert len(accepted) == 60
    gw2 = start_gateway(env, cwd=tmp_path, port=gw.port)
    gw2.api_key = gw.api_key
    try:
        statuses = wait_final(gw2, accepted)
    finally:
        gw2.stop()
    assert set(statuses.values()) == {"delivered"}
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'gw-data' / 'msgine.db'}")
    with engine.connect() as conn:
        submitted = conn.execute(sa.select(simulator_submissions.c.submit_key)).scalars().all()
        rcpt_ids = conn.execute(sa.select(recipients.c.id)).scalars().all()
    engine.dispose()
    assert sorted(submitted) == sorted(rcpt_ids)  # one carrier submission per recipient


@pytest.mark.slow
def test_two_workers_on_postgresql_share_the_queue(tmp_path: Path, postgres_url: str) -> None:
    env = gateway_env(tmp_path, postgres_url, MSGINE_MASTER_KEY=_master_key(), **NO_LIMITS)
    api = start_gateway(env, cwd=tmp_path, args=("--no-worker",))
    accepted = send_many(api, 120)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "msgine", "worker"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        statuses = wait_final(api, accepted)
    finally:
        for w in workers:
            w.terminate()
            w.wait(timeout=15)
        api.stop()
    assert len(statuses) == 120
    engine = _engine(postgres_url)
    with engine.connect() as conn:
        calls = conn.execute(sa.select(simulator_submissions.c.calls)).scalars().all()
    engine.dispose()
    assert len(calls) == 120
    assert set(calls) == {1}  # no recipient was submitted by both workers
    assert all(w.returncode == 0 for w in workers)


def _master_key() -> str:
    import base64
    import secrets

    return base64.b64encode(secrets.token_bytes(32)).decode()


def test_cli_accounts_and_keys(gateway: Gateway) -> None:
    account = json.loads(gateway.cli("accounts", "create", "acme", "--json").stdout)
    assert account["name"] == "acme" and account["id"].startswith("acc_")
    created = json.loads(
        gateway.cli(
            "keys",
            "create",
            "--account",
            "acme",
            "--name",
            "ci",
            "--scopes",
            "messages:send,messages:read",
            "--allow-ip",
            "127.0.0.1/32",
            "--json",
        ).stdout
    )
    assert {"id", "key", "mode", "account"} <= set(created)
    assert created["account"] == account["id"] and created["mode"] == "test"
    r = httpx.post(
        f"{gateway.base_url}/messages/sms",
        json={"to": "+256701521269", "message": "via cli key"},
        headers={"X-Api-Key": created["key"]},
    )
    assert r.status_code == 201
    listing = gateway.cli("keys", "list", "--json").stdout
    assert created["key"] not in listing
    rotated = json.loads(
        gateway.cli("keys", "rotate", created["id"], "--grace-hours", "0", "--json").stdout
    )
    assert rotated["key"] != created["key"]
    old = httpx.get(f"{gateway.base_url}/messages", headers={"X-Api-Key": created["key"]})
    assert old.status_code == 401
    gateway.cli("keys", "revoke", rotated["id"], "--yes")
    new = httpx.get(f"{gateway.base_url}/messages", headers={"X-Api-Key": rotated["key"]})
    assert new.status_code == 401


def test_cli_errors_are_one_line_and_nonzero(gateway: Gateway) -> None:
    for args in (
        ("keys", "revoke", "key_nope"),
        ("keys", "create", "--mode", "prod"),
        ("keys", "create", "--scopes", "everything"),
    ):
        result = gateway.cli(*args, check=False)
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_first_start_makes_a_private_master_key_and_prints_the_key_once(tmp_path: Path) -> None:
    env = gateway_env(tmp_path)
    gw = start_gateway(env, cwd=tmp_path)
    gw.stop()
    key_file = tmp_path / "gw-data" / "master.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "gw-data").stat().st_mode & 0o777 == 0o700
    for name in ("msgine.db", "msgine.db-wal", "msgine.db-shm"):
        database_file = tmp_path / "gw-data" / name
        if database_file.exists():
            assert database_file.stat().st_mode & 0o777 == 0o600, name
    again = start_gateway(env, cwd=tmp_path, port=gw.port)
    again.stop()
    assert gw.api_key and not again.api_key
    key_file.chmod(0o644)
    result = subprocess.run(
        [sys.executable, "-m", "msgine", "db", "upgrade"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "chmod 600" in result.stderr


def test_logs_and_metrics_hold_no_secrets_or_personal_data(gateway: Gateway) -> None:
    number, text = "+256701521269", "Secret text 4471"
    r = httpx.post(
        f"{gateway.base_url}/messages/sms",
        json={"to": number, "message": text, "callbackUrl": "https://127.0.0.1:9/cb"},
        headers={"Authorization": f"Bearer {gateway.api_key}"},
    )
    assert r.status_code == 201
    httpx.get(f"{gateway.base_url}/messages", headers={"X-Api-Key": gateway.api_key + "x"})
    metrics = httpx.get(f"http://127.0.0.1:{gateway.port}/metrics").text
    assert "msgine_http_requests_total" in metrics
    time.sleep(1)
    gateway.stop()
    log = (Path(gateway.root) / f"gateway-{gateway.port}.log").read_text()
    for secret in (gateway.api_key, number, number[1:], text):
        assert secret not in log
        assert secret not in metrics


def test_openapi_describes_every_route_and_its_errors(gateway: Gateway) -> None:
    schema = httpx.get(f"http://127.0.0.1:{gateway.port}/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/v1/messages/sms",
        "/api/v1/developers/sms",
        "/api/v1/messages/{message_id}",
        "/api/v1/developers/sms/history",
        "/api/v1/keys",
        "/healthz",
        "/readyz",
    ):
        assert path in paths
    send = paths["/api/v1/messages/sms"]["post"]["responses"]
    assert {"201", "400", "401", "403", "409", "413", "429"} <= set(send)


def test_health_and_readiness(gateway: Gateway) -> None:
    base = f"http://127.0.0.1:{gateway.port}"
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{base}/readyz").status_code == 200
    assert httpx.get(f"{base}/healthz").headers["x-request-id"]
