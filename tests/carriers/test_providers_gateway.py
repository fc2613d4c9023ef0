"""Both provider kinds through a real ``msgine serve``, configured with the CLI commands the docs
show: the test servers speak HTTPS with a private CA (the carriers' ``ca_bundle``), and post
their receipts and inbound messages to the gateway's callback routes over real sockets (Twilio's
signed for the gateway's ``MSGINE_PUBLIC_URL``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from carriers_helpers import KE, Operator
from providers.africastalking_server import AfricasTalkingServer
from providers.provider_server import running
from providers.twilio_server import TwilioServer
from relay_support import live_key, open_gateway_runtime

from support import Gateway, free_port, gateway_env, start_gateway, wait_until

US = "+14155550123"
SENDER = "+15005550006"

pytestmark = pytest.mark.slow


def _add(gw: Gateway, root: Path, name: str, kind: str, creds: dict[str, str], *opts: str) -> str:
    secret = root / f"{name}.json"
    secret.write_text(json.dumps(creds))
    secret.chmod(0o600)
    options = [arg for option in opts for arg in ("-o", option)]
    added = gw.cli(
        "carriers",
        "add",
        name,
        "--kind",
        kind,
        "--credentials-file",
        str(secret),
        *options,
        "--json",
    )
    url: str = json.loads(added.stdout)["callbackUrl"]
    return url


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("providers")
    port = free_port()
    env = gateway_env(root, MSGINE_PUBLIC_URL=f"http://127.0.0.1:{port}")
    with (
        running(AfricasTalkingServer(tls=True)) as at,
        running(TwilioServer(tls=True, numbers={SENDER})) as tw,
    ):
        at.auto_callbacks = tw.auto_callbacks = True
        gw = start_gateway(env, cwd=root, port=port)
        db = open_gateway_runtime(root)  # routes and the key as the CLI makes them
        try:
            creds = {"username": at.username, "api_key": at.api_key}
            ca = f"ca_bundle={at.ca_path()}"
            base = _add(gw, root, "at-ke", "africastalking", creds, f"base_url={at.base_url}", ca)
            at.delivery_reports_url, at.incoming_messages_url = (
                f"{base}/receipts",
                f"{base}/inbound",
            )
            creds = {"account_sid": tw.account_sid, "auth_token": tw.auth_token}
            options = (f"base_url={tw.base_url}", f"ca_bundle={tw.ca_path()}")
            base = _add(
                gw, root, "twilio-us", "twilio", creds, *options, f"default_sender={SENDER}"
            )
            tw.sms_url = f"{base}/inbound"
            operator = Operator(db, root)
            operator.add_route(["at-ke"], country="KE", currency="USD")
            operator.add_route(["twilio-us"], country="US", currency="USD")
            yield {"gw": gw, "at": at, "tw": tw, "key": live_key(db)}
        finally:
            gw.stop()
            db.close()


def test_sends_through_both_providers_are_delivered_by_their_callbacks(
    world: dict[str, Any],
) -> None:
    gw, headers = world["gw"], {"Authorization": f"Bearer {world['key']}"}
    sent = httpx.post(
        f"{gw.base_url}/messages/sms",
        json={"to": [KE, US], "message": "Through the providers"},
        headers=headers,
        timeout=10,
    )
    assert sent.status_code == 201, sent.text

    def delivered() -> list[str] | None:
        found = httpx.get(f"{gw.base_url}/messages/{sent.json()['id']}", headers=headers)
        statuses = sorted(r["status"] for r in found.json()["recipients"])
        return statuses if statuses == ["delivered", "delivered"] else None

    assert wait_until(delivered, "both messages delivered", every=0.2)
    assert [m.number for m in world["at"].messages] == [KE]
    assert [m["to"] for m in world["tw"].messages.values()] == [US]
    # Every callback the providers posted was taken (after its commit), none refused.
    assert {status for _, status in world["at"].sent + world["tw"].sent} == {200}


def test_stop_through_twilio_reaches_the_suppression_list(world: dict[str, Any]) -> None:
    gw, headers = world["gw"], {"Authorization": f"Bearer {world['key']}"}
    answered = world["tw"].incoming(US, "STOP").send()
    assert answered.status_code == 200
    assert answered.text.startswith("<?xml")
    listed = httpx.get(f"{gw.base_url}/suppressions", headers=headers, timeout=10)
    assert listed.status_code == 200, listed.text
    assert US in listed.text
    forged = world["tw"].incoming(US, "START")
    refused = httpx.post(forged.url, data=forged.form, headers={}, timeout=10)
    assert refused.status_code == 401
