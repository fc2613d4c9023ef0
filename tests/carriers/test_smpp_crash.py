"""kill -9 of the delivery worker at each step of an SMPP submit and of a receipt.

The gateway runs as ``msgine serve --no-worker`` plus a separate ``msgine worker`` process,
which the tests stop (SIGSTOP: the SMSC's PDUs wait unread in its socket) and kill (SIGKILL).
The Node SMSC counts what it received and redelivers every deliver_sm not acknowledged.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from smsc_support import PASSWORD, SYSTEM_ID, Smsc

from support import Gateway, gateway_env, start_gateway, wait_until

pytestmark = pytest.mark.slow
UG = "+256701521269"


@dataclass
class Deployment:
    gateway: Gateway
    smsc: Smsc
    live_key: str
    tmp: Path
    worker: subprocess.Popen[bytes] | None = None

    def start_worker(self) -> None:
        log = open(self.tmp / "worker.log", "ab")  # noqa: SIM115 - lives with the process
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "msgine", "worker"],
            env=self.gateway.env,
            cwd=self.tmp,
            stdout=log,
            stderr=log,
        )

    def freeze_worker(self) -> None:
        assert self.worker is not None
        os.kill(self.worker.pid, signal.SIGSTOP)

    def kill_worker(self) -> None:
        assert self.worker is not None
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait(timeout=10)
        self.worker = None

    def send(self, text: str = "crash test") -> str:
        response = httpx.post(
            f"{self.gateway.base_url}/messages/sms",
            json={"to": UG, "message": text, "from": "MsGine"},
            headers={"Authorization": f"Bearer {self.live_key}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def count_history(self, status: str) -> int:
        """Status history rows in the gateway's SQLite database (read directly, read-only): a
        carrier's receipt is one, with its state word (events are stored only for webhooks)."""
        path = Path(self.gateway.env["MSGINE_DATA_DIR"]) / "msgine.db"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT count(*) FROM status_events WHERE status = ?", (status,))
            return int(row.fetchone()[0])

    def recipient(self, message_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.gateway.base_url}/messages/{message_id}",
            headers={"Authorization": f"Bearer {self.live_key}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return dict(response.json()["recipients"][0])

    def wait_status(self, message_id: str, status: str) -> None:
        # Polled no faster than the key's default limit of 20 requests a second allows.
        wait_until(
            lambda: self.recipient(message_id)["status"] == status,
            f"the recipient to be {status}",
            every=0.2,
        )


def _configure(data_dir: Path, smsc: Smsc) -> str:
    """The carrier, its route and a live key, written as the CLI would (in this process: a
    CLI call costs seconds of imports on a busy machine); returns the key."""
    from msgine.server.audit import Actor
    from msgine.server.carriers._config import add_carrier, add_route
    from msgine.server.config import Settings
    from msgine.server.keys import create_key
    from msgine.server.runtime import Runtime

    runtime = Runtime.open(Settings(_env_file=None, data_dir=data_dir))  # type: ignore[call-arg]
    actor, now = Actor(name="cli:test"), runtime.now()
    try:

        def configure(conn: Any) -> str:
            add_carrier(
                conn,
                runtime.vault,
                name="smsc-a",
                kind="smpp",
                options={"host": "127.0.0.1", "port": smsc.port, "reconnect_first": 0.05},
                credentials={"system_id": SYSTEM_ID, "password": PASSWORD},
                now=now,
                actor=actor,
            )
            add_route(
                conn,
                runtime.vault,
                carrier_names=["smsc-a"],
                price_per_segment=25,
                currency="UGX",
                country="UG",
                now=now,
                actor=actor,
            )
            account = conn.exec_driver_sql("SELECT id FROM accounts").scalar_one()
            new = create_key(conn, runtime.vault, account_id=account, now=now, mode="live")
            return str(new.secret)

        return runtime.db.write(configure)
    finally:
        runtime.close()


@pytest.fixture
def deployment(tmp_path: Path, smsc: Smsc) -> Iterator[Deployment]:
    # A short lease: a killed worker's claimed jobs return to the queue quickly.
    env = gateway_env(tmp_path, MSGINE_JOB_LEASE_SECONDS="3")
    gateway = start_gateway(env, cwd=tmp_path, args=("--no-worker",))
    deployment = Deployment(gateway, smsc, "", tmp_path)
    try:
        deployment.live_key = _configure(Path(env["MSGINE_DATA_DIR"]), smsc)
        yield deployment
    finally:
        if deployment.worker is not None and deployment.worker.poll() is None:
            deployment.worker.kill()
            deployment.worker.wait()
        # A test that restarts the API replaces deployment.gateway: stop that one too (it was
        # left running after the test); stopping the killed first one again does nothing.
        deployment.gateway.stop()
        gateway.stop()


def submits(smsc: Smsc) -> int:
    return len(smsc.state()["submits"])


def test_killed_before_the_submit_it_is_sent_once_later(deployment: Deployment) -> None:
    message_id = deployment.send()  # queued; no worker has claimed it
    deployment.gateway.stop(kill=True)  # kill -9 of the API: the message is stored
    restarted = start_gateway(deployment.gateway.env, cwd=deployment.tmp, args=("--no-worker",))
    deployment.gateway = restarted
    deployment.start_worker()
    deployment.wait_status(message_id, "sent")
    assert submits(deployment.smsc) == 1


def test_killed_awaiting_submit_sm_resp_it_is_never_sent_twice(deployment: Deployment) -> None:
    smsc = deployment.smsc
    smsc.configure(silent=True)
    deployment.start_worker()
    message_id = deployment.send()
    wait_until(lambda: submits(smsc) == 1)
    deployment.kill_worker()
    smsc.configure(silent=False)
    deployment.start_worker()
    deployment.wait_status(message_id, "unknown")
    time.sleep(1.0)  # the restarted worker has had time to send it again, and did not
    assert submits(smsc) == 1


def test_killed_with_the_response_unread_a_receipt_settles_it(deployment: Deployment) -> None:
    smsc = deployment.smsc
    smsc.configure(silent=True)
    deployment.start_worker()
    message_id = deployment.send()
    wait_until(lambda: submits(smsc) == 1)
    deployment.freeze_worker()
    smsc.control.post("/answer").raise_for_status()  # the answer waits, unread, in the socket
    time.sleep(0.2)
    deployment.kill_worker()
    deployment.start_worker()
    deployment.wait_status(message_id, "unknown")
    # The SMSC took it (it answered with a message id the gateway never read): its receipt,
    # from the handset's number, settles the recipient.
    [submit] = smsc.state()["submits"]
    smsc.receipt(submit["messageId"], "DELIVRD", source=UG.lstrip("+"))
    deployment.wait_status(message_id, "delivered")
    assert submits(smsc) == 1


def test_killed_after_the_submit_committed_nothing_is_resent(deployment: Deployment) -> None:
    smsc = deployment.smsc
    deployment.start_worker()
    message_id = deployment.send()
    deployment.wait_status(message_id, "sent")
    deployment.kill_worker()
    deployment.start_worker()
    [submit] = smsc.state()["submits"]
    smsc.receipt(submit["messageId"], "DELIVRD", source=UG.lstrip("+"))
    deployment.wait_status(message_id, "delivered")
    assert submits(smsc) == 1


def test_killed_with_a_receipt_unread_the_smsc_delivers_it_again(deployment: Deployment) -> None:
    smsc = deployment.smsc
    deployment.start_worker()
    message_id = deployment.send()
    deployment.wait_status(message_id, "sent")
    [submit] = smsc.state()["submits"]
    deployment.freeze_worker()
    smsc.receipt(submit["messageId"], "DELIVRD", source=UG.lstrip("+"))
    time.sleep(0.3)  # the deliver_sm sits unread in the frozen worker's socket
    deployment.kill_worker()
    assert deployment.recipient(message_id)["status"] == "sent"  # not stored, not acknowledged
    assert smsc.state()["delivered"] == []
    deployment.start_worker()
    deployment.wait_status(message_id, "delivered")
    wait_until(lambda: len(smsc.state()["delivered"]) == 1)
    assert smsc.state()["redeliveries"] == 1


def test_a_receipt_stored_but_unacknowledged_comes_again_and_changes_nothing(
    deployment: Deployment,
) -> None:
    """The kill between storing and acknowledging: the SMSC sends the receipt again, and the
    gateway, which already applied it, applies it once."""
    smsc = deployment.smsc
    deployment.start_worker()
    message_id = deployment.send()
    deployment.wait_status(message_id, "sent")
    [submit] = smsc.state()["submits"]
    for _ in range(2):
        smsc.receipt(submit["messageId"], "DELIVRD", source=UG.lstrip("+"))
    wait_until(lambda: len(smsc.state()["delivered"]) == 2)
    assert deployment.recipient(message_id)["status"] == "delivered"
    assert deployment.count_history("delivered") == 1
