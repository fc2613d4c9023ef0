"""Two real gateways: one as the "hosted" MsGine, the other relaying to it through a ``msgine``
carrier. Both speak TLS at their front (a TLS-terminating proxy with trustme certificates, as a
deployment's reverse proxy would), so the relay's submits and the hosted gateway's signed
webhooks are verified for real.

send -> relay submits upstream -> the hosted simulator delivers -> its signed webhook reaches
the relay's callback route -> the relay's message is delivered and its own webhook fires. Then
SIGKILL of the relay between the upstream's answer and the relay's commit: after a restart the
resubmit carries the same idempotency key, so the hosted gateway holds exactly one message.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from carriers_helpers import UG, Operator
from http_support import TcpProxy
from relay_support import live_key, open_gateway_runtime

from support import Gateway, free_port, gateway_env, start_gateway
from webhook_receiver import Receiver, start_receiver

pytestmark = pytest.mark.slow

LIMITS = {
    "MSGINE_RATE_LIMIT_PER_KEY": "100000/minute",
    "MSGINE_RATE_LIMIT_PER_RECIPIENT": "100000/hour",
    "MSGINE_RATE_LIMIT_PER_ACCOUNT": "100000/minute",
    "MSGINE_RATE_LIMIT_PER_IP": "100000/minute",
    "MSGINE_DAILY_CAP": "0",
}


def tls_server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@dataclass
class Pair:
    hosted: Gateway
    relay: Gateway
    relay_env: dict[str, str] = field(repr=False)
    relay_root: Path
    live_key: str = field(repr=False)
    hosted_front: str
    receiver: Receiver
    proxies: list[TcpProxy]
    operator: Operator

    def relay_api(self, path: str) -> str:
        return f"http://127.0.0.1:{self.relay.port}/api/v1{path}"

    def send(self, text: str, to: str = UG) -> str:
        answer = httpx.post(
            self.relay_api("/messages/sms"),
            json={"to": to, "message": text},
            headers={"Authorization": f"Bearer {self.live_key}"},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def relay_message(self, message_id: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.live_key}"}
        answer = httpx.get(self.relay_api(f"/messages/{message_id}"), headers=headers, timeout=10)
        return dict(answer.json())

    def wait_status(self, message_id: str, status: str, within: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = self.relay_message(message_id)
            if found["recipients"][0]["status"] == status:
                return found
            time.sleep(0.1)
        raise AssertionError(f"still {found['recipients'][0]['status']}, not {status}")

    def hosted_messages(self, text: str) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.hosted.api_key}"}
        found = httpx.get(
            f"{self.hosted.base_url}/messages?limit=100", headers=headers, timeout=10
        ).json()
        return [m for m in found["messages"] if m["content"] == text]


def _credentials(root: Path, name: str, values: dict[str, str]) -> str:
    path = root / name
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return str(path)


def _configure(pair: Pair, ca_path: Path) -> None:
    """As an operator would: the carrier (with the CLI, which prints its callback URL), that URL
    registered at the hosted gateway as a webhook endpoint, the endpoint's secret in the
    carrier's credentials, a route."""
    relay, hosted, root = pair.relay, pair.hosted, pair.relay_root
    first = _credentials(root, "up.json", {"api_key": hosted.api_key})
    added = relay.cli(
        "carriers", "add", "up", "--kind", "msgine",
        "-o", f"base_url={pair.hosted_front}/api/v1", "-o", f"ca_bundle={ca_path}",
        "--credentials-file", first, "--json",
    )  # fmt: skip
    callback = json.loads(added.stdout)["callbackUrl"]
    endpoint = httpx.post(
        f"{hosted.base_url}/webhooks",
        json={"url": f"{callback}/events"},
        headers={"Authorization": f"Bearer {hosted.api_key}"},
        timeout=10,
    )
    assert endpoint.status_code == 201, endpoint.text
    values = {"api_key": hosted.api_key, "webhook_secret": endpoint.json()["secret"]}
    pair.operator.update_carrier("up", credentials=values)
    pair.operator.add_route(["up"])
    ours = httpx.post(
        pair.relay_api("/webhooks"),
        json={"url": pair.receiver.url("/hook")},
        headers={"Authorization": f"Bearer {pair.live_key}"},
        timeout=10,
    )
    assert ours.status_code == 201, ours.text


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("relay")
    ca = trustme.CA()
    ca_path = root / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    tls = tls_server_context(ca)
    receiver, receiver_server = start_receiver(ca)
    hosted_root, relay_root = root / "hosted", root / "relay"
    hosted_root.mkdir()
    relay_root.mkdir()
    common = {**LIMITS, "MSGINE_WEBHOOK_CA_BUNDLE": str(ca_path)}
    hosted = start_gateway(
        gateway_env(hosted_root, MSGINE_WEBHOOK_RETRY_SCHEDULE="0.5,1,2,3,5,10,20,30", **common),
        cwd=hosted_root,
    )
    relay_port = free_port()
    relay_front = TcpProxy(relay_port, tls=tls)
    hosted_front = TcpProxy(hosted.port, tls=tls)
    relay_env = gateway_env(
        relay_root,
        MSGINE_PUBLIC_URL=f"https://localhost:{relay_front.port}",
        MSGINE_JOB_LEASE_SECONDS="2",
        MSGINE_CARRIER_HEALTH_INTERVAL="1",
        **common,
    )
    relay = start_gateway(relay_env, cwd=relay_root, port=relay_port)
    relay_db = open_gateway_runtime(relay_root)
    found = Pair(
        hosted=hosted,
        relay=relay,
        relay_env=relay_env,
        relay_root=relay_root,
        live_key=live_key(relay_db),
        hosted_front=f"https://localhost:{hosted_front.port}",
        receiver=receiver,
        proxies=[relay_front, hosted_front],
        operator=Operator(relay_db, root),
    )
    try:
        _configure(found, ca_path)
        yield found
    finally:
        found.relay.stop()
        hosted.stop()
        for proxy in found.proxies:
            proxy.close()
        relay_db.close()
        receiver_server.shutdown()


def test_a_relayed_message_is_delivered_and_our_webhook_fires(pair: Pair) -> None:
    text = "Relayed through the gateway 1"
    message_id = pair.send(text)
    found = pair.wait_status(message_id, "delivered")
    [upstream] = pair.hosted_messages(text)
    assert upstream["recipients"][0]["status"] == "delivered"
    ours = found["recipients"][0]
    assert ours["carrierMessageId"].startswith(upstream["id"] + ":")
    hits = pair.receiver.wait_for(2, "/hook")
    delivered = [h.event for h in hits if h.event["event"] == "message.delivered"]
    assert [e["messageId"] for e in delivered] == [message_id]
    assert delivered[0]["livemode"] is True
    # The hosted key is the relay's secret: nothing of it reaches the relay's client.
    assert pair.hosted.api_key not in json.dumps(found)


def test_the_upstream_shows_in_readyz(pair: Pair) -> None:
    ready = httpx.get(f"http://127.0.0.1:{pair.relay.port}/readyz", timeout=10).json()
    assert ready["carriers"]["carriers"]["up"]["state"] == "up"
    assert pair.hosted.api_key not in json.dumps(ready)


def test_kill_9_between_the_upstream_answer_and_our_commit_sends_once(pair: Pair) -> None:
    """The relay dies with the hosted gateway's answer on the wire: it never records it. After
    a restart the job's lease runs out and the resubmit, under the same idempotency key, gets
    the first answer back instead of a second message."""
    killed: list[int] = []

    def kill_relay() -> bool:
        if killed:
            return True
        killed.append(pair.relay.process.pid)
        os.kill(pair.relay.process.pid, signal.SIGKILL)
        return False

    trap = TcpProxy(pair.hosted.port, on_answer=kill_relay)
    pair.proxies.append(trap)
    pair.operator.update_carrier("up", options={"base_url": f"http://127.0.0.1:{trap.port}/api/v1"})
    text = "Exactly once, whatever happens"
    message_id = pair.send(text)
    pair.relay.process.wait(timeout=30)
    assert killed, "the relay was not killed mid-submit"
    assert len(pair.hosted_messages(text)) == 1  # the hosted gateway took it
    pair.relay = start_gateway(pair.relay_env, cwd=pair.relay_root, port=pair.relay.port)
    found = pair.wait_status(message_id, "delivered", within=40)
    assert len(pair.hosted_messages(text)) == 1
    [upstream] = pair.hosted_messages(text)
    assert found["recipients"][0]["carrierMessageId"].startswith(upstream["id"] + ":")
