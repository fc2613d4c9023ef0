"""The worker says that it started and where, logs each claim, submit and receipt at debug (ids
only), and serves its own metrics when it runs alone."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from msgine.server.logging import configure_logging, reset_logging
from support import free_port, make_settings

TO = "+256701521269"
TEXT = "Your code is 482913"


def test_the_database_is_described_without_credentials(tmp_path: Path) -> None:
    url = "postgresql://msgine:s3cret-pw@db.internal:5433/gateway"
    described = make_settings(tmp_path, url).database_description
    assert described == "PostgreSQL db.internal:5433/gateway"
    sqlite = make_settings(tmp_path).database_description
    assert sqlite == f"SQLite {(tmp_path / 'data' / 'msgine.db').resolve()}"


async def test_debug_logs_follow_a_message_by_ids_only(
    api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="DEBUG")
    try:
        sent = await api.send(to=TO, message=TEXT)
        await api.drain()
    finally:
        reset_logging()
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    worker = [line for line in lines if line.get("logger") == "msgine.worker"]
    message_id = sent.json()["id"]
    events = [(line["event"], line.get("status")) for line in worker]
    assert ("jobs_claimed", None) in events
    assert ("submitted", None) in events
    assert ("recipient_status", "sent") in events
    assert ("recipient_status", "delivered") in events
    for line in worker:
        assert line["level"] == "debug"
        if line["event"] != "jobs_claimed":
            assert line["message_id"] == message_id and line["recipient_id"].startswith("rcp_")
    text = json.dumps(lines)
    assert TO not in text and TO[1:] not in text and TEXT not in text


async def test_info_level_hides_the_per_message_lines(
    api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="INFO")
    try:
        await api.send()
        await api.drain()
    finally:
        reset_logging()
    assert "recipient_status" not in capsys.readouterr().err


@pytest.mark.slow
def test_msgine_worker_says_where_and_serves_metrics(gateway: Any) -> None:
    port = free_port()
    env = {**gateway.env, "MSGINE_LOG_LEVEL": "INFO"}
    process = subprocess.Popen(
        [sys.executable, "-m", "msgine", "worker", "--metrics-port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors: list[str] = []
    try:
        assert process.stdout is not None and process.stderr is not None
        stderr = process.stderr
        threading.Thread(
            target=lambda: errors.extend(iter(stderr.readline, "")), daemon=True
        ).start()
        first = process.stdout.readline()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
                if any('"worker_started"' in line for line in errors):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"the worker did not start: {errors}")
    finally:
        process.terminate()
        process.wait(timeout=30)
    err = "".join(errors)
    data_dir = str(Path(env["MSGINE_DATA_DIR"]).resolve())
    assert first.startswith("msgine worker started: database SQLite "), first
    assert f"data dir {data_dir}" in first
    assert f"metrics http://127.0.0.1:{port}/metrics" in first
    assert scraped.status_code == 200
    assert "msgine_carrier_submit_seconds" in scraped.text or "msgine_messages" in scraped.text
    started = [json.loads(line) for line in err.splitlines() if '"worker_started"' in line]
    assert started and started[0]["level"] == "info" and "simulator" in started[0]["carriers"]
    assert env.get("MSGINE_MASTER_KEY", "unset") not in first
