"""``msgine webhooks listen`` and ``trigger`` end to end: a real gateway, the examples' receivers
run as their docs say, events forwarded over plain http://127.0.0.1 and verified there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import free_port

pytestmark = pytest.mark.slow
LISTEN = [sys.executable, "-m", "msgine", "webhooks", "listen"]
ROOT = Path(__file__).resolve().parents[2]
RECEIVERS = {
    # The run commands of the examples' docstrings.
    "fastapi": (["-m", "uvicorn", "examples.fastapi_receiver:app", "--port"], 200),
    "flask": (["-m", "flask", "--app", "examples/flask_receiver.py", "run", "--port"], 204),
}


def start_receiver(kind: str, secret: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    args, _ = RECEIVERS[kind]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSGINE_")}
    env.update({"MSGINE_WEBHOOK_SECRET": secret, "PYTHONUNBUFFERED": "1"})
    process = subprocess.Popen(
        [sys.executable, *args, str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return process
        except httpx.HTTPError:
            assert process.poll() is None, log.read_text()
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"{kind} receiver did not start: {log.read_text()}")


def lines_of(process: subprocess.Popen[str]) -> list[str]:
    lines: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True).start()
    return lines


def wait_for(lines: list[str], count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(lines) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(lines) >= count, lines


@pytest.mark.parametrize("kind", sorted(RECEIVERS))
def test_listen_forwards_test_events_to_the_example_receivers(
    gateway: Any, tmp_path: Path, kind: str
) -> None:
    secret = gateway.cli("webhooks", "listen", "--print-secret").stdout.strip()
    assert secret.startswith("whsec_")
    # Stable for the account on this machine: the receiver's setting survives sessions.
    assert gateway.cli("webhooks", "listen", "--print-secret").stdout.strip() == secret
    port = free_port()
    receiver = start_receiver(kind, secret, port, tmp_path / "receiver.log")
    url = f"http://127.0.0.1:{port}/webhooks/msgine"
    listen = subprocess.Popen(
        [*LISTEN, "--forward-to", url, "--json", "--interval", "0.1", "--max-events", "3"],
        env=gateway.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = lines_of(listen)
        wait_for(lines, 1)
        ready = json.loads(lines[0])
        assert ready["ready"] is True and ready["secret"] == secret
        sent = httpx.post(
            f"{gateway.base_url}/messages/sms",
            json={"to": "+256701521269", "message": "Hi"},
            headers={"X-Api-Key": gateway.api_key},
        )
        assert sent.status_code == 201, sent.text
        wait_for(lines, 3)  # message.sent and message.delivered
        triggered = json.loads(
            gateway.cli("webhooks", "trigger", "message.failed", "--json").stdout
        )
        assert listen.wait(timeout=60) == 0, listen.stderr.read() if listen.stderr else ""
        wait_for(lines, 4)
    finally:
        if listen.poll() is None:
            listen.kill()
        receiver.terminate()
        receiver.wait(timeout=15)
    forwarded = [json.loads(line) for line in lines[1:4]]
    expected = RECEIVERS[kind][1]
    assert [f["status"] for f in forwarded] == [expected] * 3, forwarded
    assert sorted(f["event"] for f in forwarded) == [
        "message.delivered",
        "message.failed",
        "message.sent",
    ]
    assert forwarded[-1]["id"] == triggered["id"]
    # The receivers log each event only after verifying its signature.
    log = (tmp_path / "receiver.log").read_text()
    for item in forwarded:
        assert f"event {item['id']}: {item['event']}" in log, log


def test_listen_refuses_other_hosts_and_trigger_unknown_events(gateway: Any) -> None:
    refused = gateway.cli(
        "webhooks", "listen", "--forward-to", "http://example.com/hook", check=False
    )
    assert refused.returncode != 0
    assert "localhost" in refused.stderr and "http://example.com" not in refused.stdout
    unknown = gateway.cli("webhooks", "trigger", "message.exploded", check=False)
    assert unknown.returncode != 0 and "message.delivered" in unknown.stderr


async def test_only_test_mode_events_are_followed(api: Any) -> None:
    """Events of live messages stay out, whatever else the account does; each event once."""
    from msgine.server.webhooks._listen import ListenSession, trigger

    runtime = api.runtime
    follower = ListenSession(runtime.db, runtime.vault, api.account_id, runtime.now)
    endpoint = await api.client.post(
        "/api/v1/webhooks",
        json={"url": f"https://127.0.0.1:{free_port()}/hook"},
        headers=api.headers(),
    )
    assert endpoint.status_code == 201, endpoint.text
    api.runtime.settings.allow_simulator_for_live = True  # a live message without a carrier
    live = api.new_key(mode="live")
    live_sent = await api.send(key=live, to="+256701521260")
    test_sent = await api.send(to="+256701521261")
    assert live_sent.status_code == test_sent.status_code == 201
    await api.drain()
    now = runtime.now()
    triggered = runtime.db.write(
        lambda conn: trigger(conn, runtime.vault, api.account_id, "message.delivered", now)
    )
    found = follower.poll()
    bodies = [json.loads(event.body) for event in found]
    assert {body["messageId"] for body in bodies[:-1]} == {test_sent.json()["id"]}
    assert sorted(body["event"] for body in bodies[:-1]) == ["message.delivered", "message.sent"]
    assert found[-1].id == triggered and bodies[-1]["livemode"] is False
    assert follower.poll() == []  # nothing twice
    # A triggered event reaches listen sessions only, never an endpoint.
    import sqlalchemy as sa

    from msgine.server.storage._tables import webhook_deliveries

    def deliveries(event_id: str) -> int:
        query = sa.select(sa.func.count()).where(webhook_deliveries.c.event_id == event_id)
        return int(runtime.db.read(lambda conn: conn.execute(query).scalar_one()))

    assert deliveries(triggered) == 0
    assert deliveries(found[0].id) == 1
