"""A gateway killed with SIGKILL during retries resumes them on restart, with the same event id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from webhooks_helpers import standard_verifies

from support import Gateway, gateway_env, start_gateway, wait_until
from webhook_receiver import Receiver, Reply, serving

pytestmark = pytest.mark.slow


@pytest.fixture
def failing_receiver(webhook_ca: trustme.CA) -> Iterator[Receiver]:
    with serving(webhook_ca) as rec:
        rec.script("/hook", *[Reply(500)] * 1000)
        yield rec


def _call(gw: Gateway, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.api_key}"}
    return httpx.request(method, f"{gw.base_url}{path}", headers=headers, timeout=10, **kwargs)


def test_kill_9_during_retries_then_restart_delivers_with_the_same_id(
    tmp_path: Path, ca_bundle: Path, failing_receiver: Receiver
) -> None:
    env = gateway_env(
        tmp_path,
        MSGINE_WEBHOOK_CA_BUNDLE=str(ca_bundle),
        MSGINE_WEBHOOK_RETRY_SCHEDULE="0,1,1,1,1,1,1,1,1,1",
        MSGINE_WEBHOOK_TIMEOUT="1",  # a delivery cut off mid-attempt is leased for seconds only
    )
    gw = start_gateway(env, cwd=tmp_path)
    try:
        created = _call(
            gw,
            "POST",
            "/webhooks",
            json={"url": failing_receiver.url(), "events": ["message.sent"]},
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert (
            _call(
                gw, "POST", "/messages/sms", json={"to": "+256701521269", "message": "hi"}
            ).status_code
            == 201
        )
        endpoint_id = created.json()["id"]

        def retrying() -> Any:
            found = _call(gw, "GET", f"/webhooks/{endpoint_id}/deliveries").json()
            return [
                d for d in found["deliveries"] if d["status"] == "pending" and d["attempts"] >= 2
            ]

        wait_until(retrying, "two failed attempts recorded, more retries scheduled")
    finally:
        gw.stop(kill=True)
    before = failing_receiver.hits_for()
    failing_receiver.script("/hook")  # the receiver recovers while the gateway is down

    restarted = start_gateway(env, cwd=tmp_path, port=gw.port)
    restarted.api_key = gw.api_key
    try:
        hits = failing_receiver.wait_for(len(before) + 1)

        def succeeded() -> Any:
            found = _call(restarted, "GET", f"/webhooks/{endpoint_id}/deliveries").json()
            return [d for d in found["deliveries"] if d["status"] == "succeeded"]

        [delivery] = wait_until(succeeded, "the delivery to succeed")
    finally:
        restarted.stop()
    ids = {hit.headers["webhook-id"] for hit in hits}
    assert ids == {delivery["eventId"]}
    assert len({hit.body for hit in hits}) == 1
    assert all(standard_verifies(secret, hit) for hit in hits)
    assert delivery["attempts"] >= 3
    assert [a["statusCode"] for a in delivery["attemptLog"]][-1] == 200
    assert all(a["statusCode"] == 500 for a in delivery["attemptLog"][:2])
