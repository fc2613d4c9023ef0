"""The HTTP upstream framework and the MsGine kind against a real HTTP(S) server on 127.0.0.1:
request format, every row of the answer tables, batching, transport failures, TLS, health,
and through the worker: failover, Retry-After, opted-out recipients."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
import trustme
from carriers_helpers import UG, Operator, history, recipient
from http_support import API_KEY, add_http_carrier, drain_and_stop, error_reply, msgine_accepts
from smsc_support import request as submit_request

from msgine.server.carriers._upstream import UncertainSubmit, http_rule
from msgine.server.carriers.msgine_api import (
    RECIPIENT_ANSWERS,
    REQUEST_ANSWERS,
    MsgineCredentials,
    MsgineOptions,
    MsgineUpstream,
)
from msgine.server.errors import InvalidRequest
from msgine.server.storage._tables import jobs, suppressions
from webhook_receiver import Receiver, Reply, serving

SEND = "/api/v1/messages/sms"
FAKE_VAULT: Any = SimpleNamespace(
    blind_index=lambda scope, value: hashlib.sha256(f"{scope}\0{value}".encode()).hexdigest()
)


@pytest.fixture
def database_url() -> None:
    """This module's worker tests run on SQLite; the callback tests' storage runs on both."""
    return None


def upstream(provider: Receiver, **options: Any) -> MsgineUpstream:
    opts = MsgineOptions(base_url=provider.url("/api/v1"), **options)
    return MsgineUpstream("up", opts, MsgineCredentials(api_key=API_KEY), FAKE_VAULT)


async def submit_once(carrier: MsgineUpstream, *requests: Any) -> list[Any]:
    await carrier.start(SimpleNamespace())
    try:
        return list(
            await asyncio.gather(*(carrier.submit(r) for r in requests), return_exceptions=True)
        )
    finally:
        await carrier.stop()


# --- the request and the answer tables ---------------------------------------------------------


async def test_the_request_is_msgine_s_public_api_with_our_submit_key(provider: Receiver) -> None:
    carrier = upstream(provider, default_sender="Shop")
    [result] = await submit_once(carrier, submit_request("Hello", key="rcp_abc", sender=None))
    [hit] = provider.hits_for(SEND)
    assert hit.headers["authorization"] == f"Bearer {API_KEY}"
    assert hit.headers["idempotency-key"] == "rcp_abc"
    assert json.loads(hit.body) == {"to": UG, "message": "Hello", "from": "Shop"}
    assert result.accepted and result.carrier_message_id.startswith("msg_")
    assert carrier.idempotent  # one recipient per request: MsGine dedupes a resend
    assert API_KEY not in repr(carrier) + repr(carrier.options)


@pytest.mark.parametrize(("status", "code"), sorted(REQUEST_ANSWERS))
async def test_every_request_answer_row(provider: Receiver, status: int, code: str) -> None:
    rule = REQUEST_ANSWERS[(status, code)]
    provider.script(
        SEND, error_reply(status, "other" if code == "*" else code, **{"Retry-After": "7"})
    )
    [result] = await submit_once(upstream(provider), submit_request())
    assert not result.accepted
    assert result.error_code == rule.error_code
    assert (result.retryable, result.failover) == (
        rule.outcome == "retry",
        rule.outcome == "failover",
    )
    assert result.retry_after == (7 if rule.outcome == "retry" else None)
    assert result.detail.startswith(f"HTTP {status}")


def test_the_table_says_what_the_docs_promise() -> None:
    """Spot checks that the table itself is right (not only that the code follows it)."""
    assert REQUEST_ANSWERS[(429, "*")].outcome == "retry"
    assert REQUEST_ANSWERS[(503, "*")].outcome == "retry"
    assert REQUEST_ANSWERS[(401, "*")].outcome == "failover"
    assert REQUEST_ANSWERS[(400, "no_route")].outcome == "failover"
    assert REQUEST_ANSWERS[(400, "invalid_phone_number")].outcome == "fail"
    assert RECIPIENT_ANSWERS[("rejected", "recipient_opted_out")].opted_out
    assert http_rule(418).outcome == "fail" and http_rule(507).outcome == "retry"


@pytest.mark.parametrize(("status", "code"), sorted(RECIPIENT_ANSWERS))
async def test_every_recipient_answer_row(provider: Receiver, status: str, code: str) -> None:
    rule = RECIPIENT_ANSWERS[(status, code)]
    item: dict[str, str] = {"to": UG, "status": status}
    if code != "*":
        item["errorCode"] = code
    answer = {"id": "msg_1", "recipients": [item]}
    provider.script(
        SEND, Reply(201, {"Content-Type": "application/json"}, json.dumps(answer).encode())
    )
    [result] = await submit_once(upstream(provider), submit_request())
    assert result.accepted == (rule.outcome == "accepted")
    assert result.error_code == rule.error_code
    assert result.opted_out == rule.opted_out
    if result.accepted:
        assert result.carrier_message_id.startswith("msg_1:")


async def test_unlisted_statuses_and_an_http_date_retry_after(provider: Receiver) -> None:
    later = (datetime.now(UTC) + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    provider.script(
        SEND,
        error_reply(418, "teapot"),
        error_reply(507, "full", **{"Retry-After": later}),
        Reply(201, {}, b"not json"),
    )
    carrier = upstream(provider)
    teapot, full, garbled = [(await submit_once(carrier, submit_request()))[0] for _ in range(3)]
    assert (teapot.retryable, teapot.error_code) == (False, "carrier_rejected")
    assert full.retryable and 80 <= full.retry_after <= 91
    assert garbled.retryable and garbled.detail == "unreadable answer"  # safe: same key again


async def test_a_batch_is_one_request_per_text(provider: Receiver) -> None:
    carrier = upstream(provider, batch_size=10)
    numbers = ["+256701000001", "+256701000002", "+256701000003"]
    results = await submit_once(
        carrier,
        *(submit_request("Same", key=f"k{n}", to=num) for n, num in enumerate(numbers)),
        submit_request("Other", key="k9"),
    )
    hits = provider.hits_for(SEND)
    assert len(hits) == 2
    bodies = sorted((json.loads(h.body) for h in hits), key=lambda b: b["message"])
    assert bodies[0] == {"to": UG, "message": "Other", "from": "MsGine"}
    assert bodies[1]["to"] == numbers
    assert {h.headers["idempotency-key"].startswith("batch_") for h in hits} == {True, False}
    ids = [r.carrier_message_id for r in results]
    assert all(r.accepted for r in results) and len(set(ids)) == 4
    assert len({i.split(":")[0] for i in ids[:3]}) == 1  # one MsGine message, three recipients
    assert not carrier.idempotent  # a group may not rebuild identically: marks and crash policy


# --- transport failures, TLS, health ------------------------------------------------------------


async def test_nothing_listening_is_a_retry(provider: Receiver) -> None:
    from support import free_port

    carrier = MsgineUpstream(
        "up",
        MsgineOptions(base_url=f"http://127.0.0.1:{free_port()}/api/v1", degraded_after=2),
        MsgineCredentials(api_key=API_KEY),
        FAKE_VAULT,
    )
    await carrier.start(SimpleNamespace())
    try:
        first = await carrier.submit(submit_request())
        assert carrier.health().state == "up"
        await carrier.submit(submit_request())
        health = carrier.health()
    finally:
        await carrier.stop()
    assert first.retryable and first.error_code == "upstream_down"
    assert first.detail == "connect_error"
    assert health.state == "degraded" and "connect_error" in (health.detail or "")


async def test_a_timeout_is_retried_only_where_msgine_dedupes(provider: Receiver) -> None:
    provider.script(SEND, Reply(delay=2), Reply(delay=2))
    [single] = await submit_once(upstream(provider, timeout=0.3), submit_request())
    assert single.retryable and single.detail == "read_timeout"
    [batched] = await submit_once(upstream(provider, timeout=0.3, batch_size=5), submit_request())
    assert isinstance(batched, UncertainSubmit)  # may have been sent: the crash policy decides


async def test_health_recovers_after_one_good_answer(provider: Receiver) -> None:
    provider.script(SEND, error_reply(503, "busy"), error_reply(503, "busy"))
    carrier = upstream(provider, degraded_after=2)
    await carrier.start(SimpleNamespace())
    try:
        for _ in range(2):
            await carrier.submit(submit_request())
        assert carrier.health().state == "degraded"
        assert "HTTP 503" in (carrier.health().detail or "")
        assert (await carrier.submit(submit_request())).accepted
        assert carrier.health().state == "up"
    finally:
        await carrier.stop()


@pytest.fixture(scope="module")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("upstream-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


async def test_tls_is_verified_and_a_ca_bundle_adds_trust(tls_ca: tuple[trustme.CA, Path]) -> None:
    ca, bundle = tls_ca
    with serving(ca, Receiver(default=msgine_accepts)) as receiver:
        base = receiver.url("/api/v1", host="localhost")
        creds = MsgineCredentials(api_key=API_KEY)
        plain = MsgineUpstream("up", MsgineOptions(base_url=base), creds, FAKE_VAULT)
        [refused] = await submit_once(plain, submit_request())
        assert refused.retryable and refused.detail == "tls_error"
        assert receiver.hits_for(SEND) == []  # nothing, not even the key, went out
        trusted = MsgineOptions(base_url=base, ca_bundle=bundle)
        [taken] = await submit_once(
            MsgineUpstream("up", trusted, creds, FAKE_VAULT), submit_request()
        )
        assert taken.accepted and len(receiver.hits_for(SEND)) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com/api/v1",  # a key in clear over the network
        "https://user:pw@api.example.com/api/v1",
        "https://api.example.com/api/v1?x=1",
        "ftp://api.example.com",
    ],
)
def test_base_url_must_be_https_or_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        MsgineOptions(base_url=url)


def test_tls_contexts_cannot_be_unverified() -> None:
    from msgine.server.carriers._upstream import tls_context

    context = tls_context(None)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


# --- through the worker ------------------------------------------------------------------------


def add_msgine(operator: Operator, name: str, provider: Receiver, **options: Any) -> dict[str, Any]:
    extra = {k: options.pop(k) for k in ("retry_budget",) if k in options}
    return add_http_carrier(
        operator,
        name,
        "msgine",
        {"base_url": provider.url("/api/v1"), **options},
        {"api_key": API_KEY},
        **extra,
    )


async def send_live(api: Any, **body: Any) -> str:
    sent = await api.send(api.new_key(mode="live", name="prod"), **body)
    assert sent.status_code == 201, sent.text
    return str(sent.json()["id"])


@pytest.mark.parametrize("failure", ["503", "timeout"])
async def test_failover_when_the_upstream_fails(
    api: Any, operator: Operator, provider: Receiver, failure: str
) -> None:
    reply = error_reply(503, "busy") if failure == "503" else Reply(delay=2)
    provider.script(SEND, reply)
    add_msgine(operator, "up", provider, retry_budget=1, timeout=0.3)
    operator.add_carrier("backup")
    operator.add_route(["up", "backup"])
    message_id = await send_live(api)
    await drain_and_stop(api)
    row = recipient(api.runtime, message_id)
    assert row["carrier"] == "backup" and row["status"] == "sent"
    notes = [h["detail"] for h in history(api.runtime, row["id"])]
    word = "HTTP 503" if failure == "503" else "read_timeout"
    assert any(f"failover up -> backup: retry budget spent ({word}" in (n or "") for n in notes)
    assert len(provider.hits_for(SEND)) == 1 and len(operator.submits("backup")) == 1


async def test_429_retry_after_is_honoured(
    api: Any, operator: Operator, provider: Receiver
) -> None:
    provider.script(SEND, error_reply(429, "rate_limit_exceeded", **{"Retry-After": "120"}))
    add_msgine(operator, "up", provider)
    operator.add_route(["up"])
    message_id = await send_live(api)
    started = api.runtime.now()
    await drain_and_stop(api)
    assert recipient(api.runtime, message_id)["status"] == "queued"
    job = api.runtime.db.read(lambda c: c.execute(sa.select(jobs)).mappings().one())
    wait = (job["due_at"] - started).total_seconds()
    assert 115 <= wait <= 125, wait  # as asked, not the 2 s of the default backoff
    assert len(provider.hits_for(SEND)) == 1


async def test_an_opted_out_recipient_fails_and_is_suppressed(
    api: Any, operator: Operator, provider: Receiver
) -> None:
    answer = {
        "id": "msg_2",
        "recipients": [{"to": UG, "status": "rejected", "errorCode": "recipient_opted_out"}],
    }
    provider.script(SEND, Reply(201, {}, json.dumps(answer).encode()))
    add_msgine(operator, "up", provider)
    operator.add_route(["up"])
    message_id = await send_live(api)
    await drain_and_stop(api)
    row = recipient(api.runtime, message_id)
    assert (row["status"], row["error_code"]) == ("failed", "recipient_opted_out")
    [entry] = api.runtime.db.read(lambda c: c.execute(sa.select(suppressions)).mappings().all())
    assert entry["source"] == "carrier:up" and entry["mode"] == "live"
    again = await api.send(api.new_key(mode="live", name="second"))
    assert again.json()["recipients"][0]["errorCode"] == "recipient_opted_out"


async def test_degraded_upstream_shows_in_readyz(
    api: Any, operator: Operator, provider: Receiver
) -> None:
    from msgine.server.worker import publish_health

    provider.script(SEND, *[error_reply(503, "busy")] * 3)
    add_msgine(operator, "up", provider, degraded_after=3)
    operator.add_route(["up"])
    for _ in range(3):
        await send_live(api)
    try:
        started = time.monotonic()
        while len(provider.hits_for(SEND)) < 3 and time.monotonic() - started < 10:
            await api.worker.run_once()
        await publish_health(api.worker)
    finally:
        await api.worker.fleet.stop_all()
    ready = (await api.client.get("/readyz")).json()
    item = ready["carriers"]["carriers"]["up"]
    assert item["state"] == "degraded" and "HTTP 503" in item["detail"]
    metrics = (await api.client.get("/metrics")).text
    assert 'msgine_carrier_up{carrier="up"} 0.5' in metrics
    assert API_KEY not in json.dumps(ready) + metrics


def test_add_refuses_a_cleartext_base_url(operator: Operator) -> None:
    with pytest.raises(InvalidRequest) as refused:
        add_http_carrier(
            operator, "up", "msgine", {"base_url": "http://api.example.com"}, {"api_key": API_KEY}
        )
    assert "base_url" in json.dumps(refused.value.details)
    assert API_KEY not in json.dumps(refused.value.details) + refused.value.message


def test_the_cli_prints_the_callback_url_once(operator: Operator, tmp_path: Path) -> None:
    """``carriers add`` shows the URL to configure at the provider; the view never again; the
    printed token is the one the callback route checks; the credentials are never printed."""
    from msgine.server.carriers._config import callback_target, get_carrier
    from support import settings_env

    runtime = operator.runtime
    secret_file = tmp_path / "up.json"
    secret_file.write_text(json.dumps({"api_key": API_KEY}))
    env = settings_env(runtime.settings, MSGINE_PUBLIC_URL="https://sms.example.com")
    add = ["carriers", "add", "up", "--kind", "msgine", "--credentials-file", str(secret_file),
           "-o", "base_url=https://api.example.com/api/v1"]  # fmt: skip
    added = subprocess.run(
        [sys.executable, "-m", "msgine", *add],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    [url] = re.findall(r"callback URL: (\S+)", added.stdout)
    assert url.startswith("https://sms.example.com/api/v1/carriers/up/callbacks/")
    token = url.rsplit("/", 1)[1]
    assert len(token) >= 43
    shown = runtime.db.read(lambda conn: get_carrier(conn, runtime.vault, "up"))
    assert token not in json.dumps(shown) and shown["callbacks"] is True  # never shown again
    assert "shown only once" in added.stderr
    target = runtime.db.read(lambda conn: callback_target(conn, runtime.vault, "up"))
    assert target is not None and target.token == token
    assert API_KEY not in added.stdout + added.stderr
