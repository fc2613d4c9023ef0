"""Callbacks from an HTTP upstream (the MsGine kind): signed receipts and inbound messages reach
the sink; forged, unsigned, stale, replayed or mis-addressed requests are refused with 401 in the
contract's format and logged as security events, before anything is stored. SQLite and
PostgreSQL (the replay keys are stored)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from carriers_helpers import UG, Operator, recipient
from http_support import (
    API_KEY,
    add_http_carrier,
    drain_and_stop,
    msgine_event,
    new_webhook_secret,
)

from msgine.server.storage._tables import events, status_events, suppressions
from webhook_receiver import Receiver

pytestmark = pytest.mark.usefixtures("every_event_stored")  # which events, not who gets them


@dataclass
class Relay:
    api: Any
    secret: str
    token: str
    message_id: str
    upstream_id: str

    def path(self, token: str | None = None, carrier: str = "up", what: str = "events") -> str:
        return f"/api/v1/carriers/{carrier}/callbacks/{token or self.token}/{what}"

    async def post(self, body: bytes, headers: dict[str, str], **where: Any) -> Any:
        return await self.api.client.post(self.path(**where), content=body, headers=headers)

    def event(self, name: str, **kwargs: Any) -> tuple[bytes, dict[str, str]]:
        return msgine_event(name, self.upstream_id, UG, kwargs.pop("secret", self.secret), **kwargs)


@pytest.fixture
async def relay(api: Any, operator: Operator, provider: Receiver) -> Relay:
    """A live message relayed to the MsGine stand-in, waiting for its receipt."""
    secret = new_webhook_secret()
    view = add_http_carrier(
        operator,
        "up",
        "msgine",
        {"base_url": provider.url("/api/v1")},
        {"api_key": API_KEY, "webhook_secret": secret},
    )
    operator.add_route(["up"])
    sent = await api.send(api.new_key(mode="live", name="prod"))
    await drain_and_stop(api)
    message_id = sent.json()["id"]
    upstream_id = recipient(api.runtime, message_id)["carrier_message_id"].split(":")[0]
    return Relay(api, secret, view["callbackToken"], message_id, upstream_id)


def count(api: Any, table: Any, *where: Any) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(*where)
    return int(api.runtime.db.read(lambda c: c.execute(query).scalar_one()))


@pytest.mark.parametrize(("event", "status"), [("delivered", "delivered"), ("failed", "failed")])
async def test_a_signed_receipt_settles_the_recipient(
    relay: Relay, event: str, status: str
) -> None:
    body, headers = relay.event(f"message.{event}", errorCode="undeliverable")
    answer = await relay.post(body, headers)
    assert answer.status_code == 200, answer.text
    row = recipient(relay.api.runtime, relay.message_id)
    assert row["status"] == status
    assert row["error_code"] == ("undeliverable" if status == "failed" else None)
    assert count(relay.api, events, events.c.type == f"message.{status}") == 1
    history = relay.api.runtime.db.read(
        lambda c: c.execute(sa.select(status_events.c.detail)).scalars().all()
    )
    assert f"receipt: {event}" in history


#: Each refusal and the reason the security log must give for it.
REFUSALS = {
    "forged": "no_matching_signature",
    "unsigned": "missing_header",
    "legacy_only": "missing_header",
    "stale": "timestamp_too_old",
    "bad_token": "bad_token",
    "unknown_carrier": "bad_token",
    "wrong_path": "unknown_path",
}


async def _refused_request(relay: Relay, case: str) -> Any:
    body, headers = relay.event("message.delivered")
    if case == "forged":
        body, headers = relay.event("message.delivered", secret=new_webhook_secret())
    elif case == "unsigned":
        headers = {}
    elif case == "legacy_only":  # the unsigned-time scheme alone could be replayed forever
        headers = {"x-msgine-signature": headers["x-msgine-signature"]}
    elif case == "stale":
        body, headers = relay.event(
            "message.delivered", when=datetime.now(UTC) - timedelta(minutes=10)
        )
    where: dict[str, Any] = {
        "bad_token": {"token": "A" * 43},
        "unknown_carrier": {"carrier": "nope"},
        "wrong_path": {"what": "receipts"},
    }.get(case, {})
    return await relay.post(body, headers, **where)


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_refused_callbacks(
    relay: Relay, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = await _refused_request(relay, case)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["code"] == "unauthorized"
    assert error["message"] == "The callback could not be authenticated."  # one for all reasons
    assert recipient(relay.api.runtime, relay.message_id)["status"] == "sent"  # nothing stored
    logged = capsys.readouterr()
    output = logged.out + logged.err
    assert "carrier_callback_refused" in output
    assert f"reason={REFUSALS[case]}" in output or f'"reason": "{REFUSALS[case]}"' in output
    for secret in (relay.secret, relay.token, API_KEY, relay.secret.removeprefix("whsec_")):
        assert secret not in output + answer.text


async def test_another_carriers_token_is_refused(relay: Relay, operator: Operator) -> None:
    other = add_http_carrier(
        operator,
        "other",
        "msgine",
        {"base_url": "https://api.example.com/api/v1"},
        {"api_key": API_KEY, "webhook_secret": relay.secret},
    )
    body, headers = relay.event("message.delivered")
    assert (await relay.post(body, headers, token=other["callbackToken"])).status_code == 401
    assert (await relay.post(body, headers, carrier="other", token=relay.token)).status_code == 401
    assert (await relay.post(body, headers)).status_code == 200


async def test_a_replay_is_refused_and_msgine_s_own_retry_is_not(relay: Relay) -> None:
    body, headers = relay.event("message.delivered")
    assert (await relay.post(body, headers)).status_code == 200
    assert (await relay.post(body, headers)).status_code == 401  # the same captured request
    # MsGine retries a delivery with the same event id, signed afresh with a new timestamp.
    event = json.loads(body)
    later = int(headers["webhook-timestamp"]) + 5
    from msgine.webhooks import signature_headers

    retry = signature_headers([relay.secret], event["id"], later, body)
    assert (await relay.post(body, retry)).status_code == 200
    assert count(relay.api, events, events.c.type == "message.delivered") == 1


async def test_inbound_stop_and_start_through_the_upstream(relay: Relay) -> None:
    api = relay.api

    def suppressed() -> int:
        return count(api, suppressions, suppressions.c.mode == "live")

    stop, _ = msgine_event("message.received", "inb_1", "+256700000000", relay.secret)
    document = json.loads(stop)
    document.update({"from": UG, "data": {"message": "STOP"}})
    from msgine.webhooks import encode_body, signature_headers

    def signed(doc: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        raw = encode_body(doc)
        return raw, signature_headers(
            [relay.secret], doc["id"], int(datetime.now(UTC).timestamp()), raw
        )

    assert (await relay.post(*signed(document))).status_code == 200
    assert suppressed() == 1
    assert count(api, events, events.c.type == "message.received") == 1
    again = dict(document, id="evt_again")  # MsGine redelivers the same inbound message
    assert (await relay.post(*signed(again))).status_code == 200
    assert count(api, events, events.c.type == "message.received") == 1
    start = dict(document, id="evt_start", messageId="inb_2", data={"message": "START"})
    assert (await relay.post(*signed(start))).status_code == 200
    assert suppressed() == 0


async def test_malformed_content_after_a_good_signature_is_a_400(relay: Relay) -> None:
    from msgine.webhooks import signature_headers

    raw = b'{"id":"evt_x","event":"message.delivered"}'
    headers = signature_headers([relay.secret], "evt_x", int(datetime.now(UTC).timestamp()), raw)
    answer = await relay.post(raw, headers)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request"


async def test_a_rotated_token_replaces_the_old_one_at_once(
    relay: Relay, operator: Operator
) -> None:
    from msgine.server.carriers._config import rotate_callback_token

    runtime = relay.api.runtime
    view = runtime.db.write(
        lambda conn: rotate_callback_token(
            conn, runtime.vault, "up", now=runtime.now(), actor=operator.actor
        )
    )
    body, headers = relay.event("message.delivered")
    assert (await relay.post(body, headers)).status_code == 401  # the old URL
    assert (await relay.post(body, headers, token=view["callbackToken"])).status_code == 200
