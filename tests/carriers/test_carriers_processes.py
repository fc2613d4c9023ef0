"""Real processes: kill -9 of a worker with a submit in flight, and credentials that never
show in command output, logs or API answers. The stub kind is registered by a small launcher,
as a deployment would install a connector module."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import carrier_stub
import httpx
import pytest
from carriers_helpers import TOKEN, UG

from support import Gateway, gateway_env, start_gateway, wait_until

pytestmark = pytest.mark.slow

LAUNCHER = """\
import sys
sys.path.insert(0, {here!r})
import carrier_stub
carrier_stub.register()
from msgine.cli import main
sys.argv[0] = "msgine"
main()
"""


@dataclass
class Deployment:
    gateway: Gateway
    launcher: Path
    root: Path

    def msgine(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, str(self.launcher), *args],
            env=self.gateway.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"msgine {args[:2]} failed: {done.stderr}")
        return done

    def worker(self, name: str) -> subprocess.Popen[str]:
        log = (self.root / f"{name}.log").open("w")
        return subprocess.Popen(
            [sys.executable, str(self.launcher), "worker"],
            env=self.gateway.env,
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    launcher = tmp_path / "run_msgine.py"
    launcher.write_text(LAUNCHER.format(here=str(Path(carrier_stub.__file__).parent)))
    env = gateway_env(
        tmp_path,
        MSGINE_JOB_LEASE_SECONDS="1",
        MSGINE_CARRIER_HEALTH_INTERVAL="0.5",
        MSGINE_LOG_LEVEL="DEBUG",
    )
    gw = start_gateway(env, cwd=tmp_path, args=("--no-worker",))
    try:
        yield Deployment(gw, launcher, tmp_path)
    finally:
        gw.stop()


def _live_key(dep: Deployment) -> str:
    created = dep.msgine("keys", "create", "--mode", "live", "--name", "prod", "--json")
    return str(json.loads(created.stdout)["key"])


@pytest.mark.parametrize(
    ("policy", "submits", "status"), [("mark_unknown", 1, "unknown"), ("resubmit", 2, "sent")]
)
def test_kill_9_with_a_submit_in_flight(
    deployment: Deployment, policy: str, submits: int, status: str
) -> None:
    """The worker dies after the carrier took the submit and before its answer was recorded.
    By default the next worker never sends again: the recipient is ``unknown``; with
    ``resubmit`` it is sent once more (to a carrier that would dedupe it)."""
    dep = deployment
    carrier_log = dep.root / "carrier.jsonl"
    creds = dep.root / "creds.json"
    creds.write_text(json.dumps({"token": TOKEN}))
    dep.msgine(
        "carriers", "add", "mtn", "--kind", "stub", "-o", "behaviour=hang",
        "-o", f"log_path={carrier_log}", "--credentials-file", str(creds),
        "--on-uncertain-submit", policy,
    )  # fmt: skip
    dep.msgine("routes", "add", "--country", "UG", "--carriers", "mtn", "--price", "20",
               "--currency", "UGX")  # fmt: skip
    key = _live_key(dep)
    headers = {"Authorization": f"Bearer {key}"}
    sent = httpx.post(
        f"{dep.gateway.base_url}/messages/sms",
        json={"to": UG, "message": "Your code is 123456"},
        headers=headers,
    )
    assert sent.status_code == 201, sent.text
    first = dep.worker("worker-1")
    try:
        wait_until(lambda: carrier_stub.submits(carrier_log), "the carrier to receive the submit")
        first.kill()  # SIGKILL: no cleanup, the answer is never recorded
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    # From now on the carrier answers at once: a second submit would go through and show.
    dep.msgine("carriers", "update", "mtn", "-o", "behaviour=accept")
    second = dep.worker("worker-2")
    try:

        def settled() -> Any:
            got = httpx.get(f"{dep.gateway.base_url}/messages/{sent.json()['id']}", headers=headers)
            rcpt = got.json()["recipients"][0]
            return rcpt if rcpt["status"] not in ("queued", "pending") else None

        rcpt = wait_until(settled, "the next worker to settle the recipient")
        time.sleep(1.5)  # time for a wrong extra submit to happen
        assert len(carrier_stub.submits(carrier_log)) == submits
        assert rcpt["status"] == status
        if status == "unknown":
            assert rcpt["errorCode"] == "uncertain_submit"
    finally:
        second.terminate()
        second.wait(timeout=15)


def test_credentials_never_show_in_output_logs_or_answers(deployment: Deployment) -> None:
    dep = deployment
    creds = dep.root / "creds.json"
    creds.write_text(json.dumps({"token": TOKEN}))
    outputs: list[str] = []

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = dep.msgine(*args, check=check)
        outputs.extend([done.stdout, done.stderr])
        return done

    run("carriers", "add", "mtn", "--kind", "stub", "--credentials-file", str(creds))
    run("carriers", "add", "json", "--kind", "stub", "--credentials-file", "-", "--json",
        check=False)  # fmt: skip
    stdin = subprocess.run(
        [sys.executable, str(dep.launcher), "carriers", "add", "piped", "--kind", "stub",
         "--credentials-file", "-", "--json"],
        input=json.dumps({"token": TOKEN}), env=dep.gateway.env, cwd=dep.root,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    outputs.extend([stdin.stdout, stdin.stderr])
    assert json.loads(stdin.stdout)["credentials"] == {"set": True, "fields": ["token"]}
    # A credential of the wrong shape is refused without echoing it.
    bad = dep.root / "bad.json"
    bad.write_text(json.dumps({"token": TOKEN, "extra": TOKEN}))
    refused = run("carriers", "update", "mtn", "--credentials-file", str(bad), check=False)
    assert refused.returncode != 0
    bad.write_text("not json " + TOKEN)
    assert run("carriers", "update", "mtn", "--credentials-file", str(bad), check=False).returncode
    for args in (
        ("carriers", "list"),
        ("carriers", "list", "--json"),
        ("carriers", "show", "mtn"),
        ("carriers", "show", "mtn", "--json"),
        ("carriers", "update", "mtn", "-o", "behaviour=accept", "--json"),
        ("audit", "list", "--json"),
    ):
        run(*args, check=args[0] != "audit")
    run("routes", "add", "--country", "UG", "--carriers", "mtn", "--price", "20",
        "--currency", "UGX", "--json")  # fmt: skip
    worker = dep.worker("worker")
    try:
        wait_until(
            lambda: (
                "mtn" in json.loads(run("carriers", "status", "--json").stdout)["carriers"]
                and json.loads(run("carriers", "status", "--json").stdout)["carriers"]["mtn"][
                    "state"
                ]
                == "up"
            ),
            "the worker to publish the carrier's health",
        )
        ready = httpx.get(f"http://127.0.0.1:{dep.gateway.port}/readyz")
        assert ready.json()["carriers"]["carriers"]["mtn"]["state"] == "up"
        metrics = httpx.get(f"http://127.0.0.1:{dep.gateway.port}/metrics")
        answers = [ready.text, metrics.text]
    finally:
        worker.terminate()
        worker.wait(timeout=15)
    logs = [p.read_text() for p in dep.root.glob("*.log")]
    assert "carrier_started" in "".join(logs)  # the worker did log about the carrier
    everything = "\n".join(outputs + answers + logs)
    assert TOKEN not in everything
    database = (dep.root / "gw-data" / "msgine.db").read_bytes()
    assert TOKEN.encode() not in database
