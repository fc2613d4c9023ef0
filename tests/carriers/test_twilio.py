"""The ``twilio`` kind against the Twilio test server: our X-Twilio-Signature verifier held to
the ``twilio`` package's RequestValidator, every row of the answer and status tables, then the
gateway end to end (submit, signed status callbacks, STOP/START/HELP, opt-out suppressions,
failover, refused callbacks, no credential anywhere)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from carriers_helpers import UG, Operator, history
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from providers.gateway_support import (
    BOTH_DATABASES,
    PUBLIC_URL,
    add_carrier_at,
    count,
    database_url,  # noqa: F401 - the module's fixture
    deliver,
    live_key,
    serving,
    settings,  # noqa: F401 - the module's fixture
)
from providers.provider_server import Fault, running
from providers.twilio_server import TwilioServer
from smsc_support import eventually, request

from msgine.server.carriers import CallbackCarrier, CallbackRefused, CallbackRequest
from msgine.server.carriers._upstream import UncertainSubmit
from msgine.server.carriers.twilio import (
    ANSWERS,
    DELIVERY_ERRORS,
    EMPTY_TWIML,
    RECEIPT_STATES,
    TwilioCallbacks,
    TwilioCredentials,
    TwilioOptions,
    TwilioUpstream,
    signature,
    verify,
)
from msgine.server.storage._tables import events, inbound_messages, recipients, suppressions

pytestmark = pytest.mark.usefixtures("every_event_stored")  # which events, not who gets them

validator_module = pytest.importorskip("twilio.request_validator")
RequestValidator = validator_module.RequestValidator

SENDER = "+15005550006"
US = "+14155550123"
SERVICE = "MG" + "0" * 32


@pytest.fixture
def tw() -> Iterator[TwilioServer]:
    with running(TwilioServer(numbers={SENDER})) as server:
        yield server


@pytest.fixture
def second_tw() -> Iterator[TwilioServer]:
    other = TwilioServer(account_sid="AC" + "9" * 32, auth_token="b" * 32, numbers={SENDER})
    with running(other) as server:
        yield server


def credentials(server: TwilioServer, **extra: Any) -> dict[str, Any]:
    return {"account_sid": server.account_sid, "auth_token": server.auth_token, **extra}


def add_twilio(operator: Operator, name: str, server: TwilioServer, **options: Any) -> str:
    extra = {k: options.pop(k) for k in ("retry_budget",) if k in options}
    creds = options.pop("credentials", None) or credentials(server)
    options.setdefault("default_sender", SENDER)
    base = add_carrier_at(
        operator, name, "twilio", {"base_url": server.base_url, **options}, creds, **extra
    )
    server.sms_url = f"{base}/inbound"
    return base


@contextlib.asynccontextmanager
async def connector(
    server: TwilioServer, callback: str | None = None, **options: Any
) -> AsyncIterator[Any]:
    creds = options.pop("credentials", None) or credentials(server)
    options.setdefault("default_sender", SENDER)
    upstream = TwilioUpstream(
        "tw",
        TwilioOptions(base_url=server.base_url, **options),
        TwilioCredentials(**creds),
        status_callback=callback,
    )
    await upstream.start(None)  # type: ignore[arg-type]
    try:
        yield upstream
    finally:
        await upstream.stop()


def rows_of(api: Any, message_id: str) -> list[dict[str, Any]]:
    query = sa.select(recipients).where(recipients.c.message_id == message_id)
    return [dict(r) for r in api.runtime.db.read(lambda c: c.execute(query).mappings().all())]


# --- the signature, against the twilio package's validator ---------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)


@hypothesis_settings(max_examples=150, deadline=None)
@given(
    params=st.lists(st.tuples(st.text("AZaz09_", min_size=1, max_size=12), _text), max_size=8),
    port=st.sampled_from(["", ":443", ":8443"]),
    query=st.sampled_from(["", "?a=1&b=%20x"]),
)
def test_our_signature_is_the_one_the_official_validator_accepts(
    params: list[tuple[str, str]], port: str, query: str
) -> None:
    token = "f00dfeed" * 4
    url = f"https://sms.example.com{port}/api/v1/carriers/tw/callbacks/tok/receipts{query}"
    validator = RequestValidator(token)
    as_dict = dict(params)  # the validator reads one value per name
    pairs = list(as_dict.items())
    signed = signature(token, url, pairs)
    assert signed == validator.compute_signature(url, as_dict)
    assert verify([token], url, pairs, signed)
    assert validator.validate(url, as_dict, signed)
    # The port Twilio may or may not have signed: both verifiers agree.
    other = url.replace(
        f"sms.example.com{port}", "sms.example.com" if port else "sms.example.com:443"
    )
    assert verify([token], other, pairs, signed) == validator.validate(other, as_dict, signed)


def test_any_change_breaks_the_signature_and_the_previous_token_still_verifies() -> None:
    token, old = "f00dfeed" * 4, "c0ffee00" * 4
    url = f"{PUBLIC_URL}/api/v1/carriers/tw/callbacks/tok/receipts"
    params = [("MessageSid", "SM1"), ("MessageStatus", "delivered"), ("To", UG)]
    signed = signature(token, url, params)
    assert verify([token], url, params, signed)
    assert not verify([token], url, [*params[:2], ("To", "+256700000000")], signed)
    assert not verify([token], url.replace("/tw/", "/tx/"), params, signed)
    assert not verify(["0" * 32], url, params, signed)
    assert not verify([token], url, params, "")
    assert verify([token, old], url, params, signature(old, url, params))


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    from msgine.server.carriers.twilio import _signature

    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(_signature.hmac, "compare_digest", recording)
    url = "https://sms.example.com/x"
    assert verify(["t" * 32], url, [], signature("t" * 32, url, []))
    assert len(compared) == 2  # the URL as given and with its default port, both compared


# --- the answer table, row by row, at the connector ----------------------------------------


@pytest.mark.parametrize(("key", "rule"), list(ANSWERS.items()), ids=str)
async def test_every_error_answer_maps_as_the_table_says(
    tw: TwilioServer, key: tuple[int, str], rule: Any
) -> None:
    status, code = key
    if code == "*":
        tw.inject(Fault(status, retry_after="9"))
    else:
        tw.rejections[UG] = int(code)
    async with connector(tw) as upstream:
        result = await upstream.submit(request(to=UG, sender=None))
    assert not result.accepted
    assert (result.error_code, result.opted_out) == (rule.error_code, rule.opted_out)
    assert (result.retryable, result.failover) == (
        rule.outcome == "retry",
        rule.outcome == "failover",
    )
    assert result.retry_after == (9.0 if rule.outcome == "retry" else None)
    assert result.detail.startswith(f"HTTP {status} ")
    assert UG[1:] not in result.detail  # Twilio's message names the number; we keep its code


async def test_a_create_is_one_request_with_the_documented_fields(tw: TwilioServer) -> None:
    callback = f"{PUBLIC_URL}/api/v1/carriers/tw/callbacks/tok/receipts"
    async with connector(tw, callback) as upstream:
        plain, named, quiet = await asyncio.gather(
            upstream.submit(request("Hi", to=UG, sender=None)),
            upstream.submit(request("Hi", key="k2", to=US, sender="MsGine")),
            upstream.submit(request("Hi", key="k3", to=US, sender=None, want_receipt=False)),
        )
    assert all(r.accepted and r.carrier_message_id in tw.messages for r in (plain, named, quiet))
    forms = {r.field("To") + (r.field("From") or ""): dict(r.form) for r in tw.api_requests()}
    assert forms[UG + SENDER] == {
        "To": UG,
        "Body": "Hi",
        "From": SENDER,
        "StatusCallback": callback,
    }
    assert forms[US + "MsGine"]["From"] == "MsGine"  # the message's own sender
    assert "StatusCallback" not in forms[US + SENDER]
    assert len(tw.api_requests()) == 3  # one recipient per request


async def test_a_messaging_service_sends_when_the_message_names_no_sender(
    tw: TwilioServer,
) -> None:
    async with connector(tw, messaging_service_sid=SERVICE, default_sender=None) as upstream:
        result = await upstream.submit(request(to=UG, sender=None))
    assert result.accepted and result.detail == "accepted"
    [sent] = tw.api_requests()
    assert (sent.field("MessagingServiceSid"), sent.field("From")) == (SERVICE, None)


async def test_an_api_key_authenticates_requests_when_given(tw: TwilioServer) -> None:
    key = {"api_key_sid": "SK" + "1" * 32, "api_key_secret": "s" * 32}
    async with connector(tw, credentials=credentials(tw, **key)) as upstream:
        result = await upstream.submit(request(to=UG, sender=None))
    assert (result.accepted, result.error_code) == (False, "upstream_unauthorized")
    import base64

    presented = tw.api_requests()[0].headers["authorization"].split()[1]
    assert base64.b64decode(presented).decode() == f"{key['api_key_sid']}:{'s' * 32}"


async def test_an_unreadable_answer_leaves_the_outcome_to_the_crash_policy(
    tw: TwilioServer,
) -> None:
    import httpx

    async def post(*args: Any, **kwargs: Any) -> httpx.Response:
        return httpx.Response(201, content=b"{}")

    async with connector(tw) as upstream:
        upstream._client.post = post
        with pytest.raises(UncertainSubmit):
            await upstream.submit(request(to=UG, sender=None))


# --- status callbacks, row by row ---------------------------------------------------------


def _callback(what: str, form: dict[str, str], token: str = "f00dfeed" * 4) -> CallbackRequest:
    url = f"{PUBLIC_URL}/api/v1/carriers/tw/callbacks/tok/{what}"
    return CallbackRequest(
        method="POST",
        url=url,
        what=what,
        headers={"x-twilio-signature": signature(token, url, list(form.items()))},
        body=urlencode(form).encode(),
        client_ip="127.0.0.1",
        received_at=datetime.now(UTC),
    )


CARRIER = CallbackCarrier(
    name="tw",
    options=TwilioOptions(default_sender=SENDER),
    credentials=TwilioCredentials(account_sid="AC" + "a" * 32, auth_token="f00dfeed" * 4),
    vault=None,  # type: ignore[arg-type]
)


def _status(state: str, code: str | None = None) -> Any:
    form = {"MessageSid": "SM1", "MessageStatus": state, "To": UG, "From": SENDER}
    if code is not None:
        form["ErrorCode"] = code
    callbacks = TwilioCallbacks()
    request = _callback("receipts", form)
    assert callbacks.authenticate(request, CARRIER)
    (receipt,) = callbacks.parse(request, CARRIER).receipts
    return receipt


@pytest.mark.parametrize(("state", "status"), list(RECEIPT_STATES.items()))
def test_every_message_status_maps_as_the_table_says(state: str, status: str) -> None:
    receipt = _status(state)
    assert (receipt.carrier_message_id, receipt.status, receipt.carrier_state) == (
        "SM1",
        status,
        state,
    )
    assert receipt.error_code == ("undeliverable" if status == "failed" else None)


@pytest.mark.parametrize(("code", "mapped"), list(DELIVERY_ERRORS.items()))
def test_every_delivery_error_code_maps_as_the_table_says(
    code: str, mapped: tuple[str, bool]
) -> None:
    receipt = _status("undelivered", code)
    assert (receipt.status, receipt.error_code, receipt.opted_out) == ("failed", *mapped)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"x-twilio-signature": ""}, "unsigned"),
        ({"x-twilio-signature": "AAAA"}, "bad_signature"),
        ({"what": "elsewhere"}, "unknown_path"),
        ({"body": b"\xff\xfe"}, "malformed"),
    ],
)
def test_a_callback_that_is_not_twilios_is_refused_before_it_is_read(
    change: dict[str, Any], reason: str
) -> None:
    import dataclasses

    genuine = _callback("receipts", {"MessageSid": "SM1", "MessageStatus": "delivered"})
    headers = dict(genuine.headers)
    if "x-twilio-signature" in change:
        headers["x-twilio-signature"] = change.pop("x-twilio-signature")
    forged = dataclasses.replace(genuine, headers=headers, **change)
    with pytest.raises(CallbackRefused) as refused:
        TwilioCallbacks().authenticate(forged, CARRIER)
    assert refused.value.reason == reason


# --- end to end through the gateway ------------------------------------------------------


@BOTH_DATABASES
async def test_a_send_is_submitted_and_signed_status_callbacks_settle_it(
    api: Any, operator: Operator, tw: TwilioServer
) -> None:
    base = add_twilio(operator, "tw-us", tw)
    operator.add_route(["tw-us"], country="UG")
    sent = await api.send(live_key(api), to=UG, message="Hello")
    assert sent.status_code == 201, sent.text
    async with serving(api):
        await api.drain()
        [submitted] = tw.api_requests("/Messages.json")
        assert submitted.path == f"/2010-04-01/Accounts/{tw.account_sid}/Messages.json"
        assert submitted.field("StatusCallback") == f"{base}/receipts"
        [row] = rows_of(api, sent.json()["id"])
        assert (row["status"], row["carrier"]) == ("sent", "tw-us")
        assert row["carrier_message_id"] in tw.messages
        callbacks = tw.take()
        assert [c.form["MessageStatus"] for c in callbacks] == ["sent", "delivered"]
        for callback in callbacks:
            assert RequestValidator(tw.auth_token).validate(
                callback.url, callback.form, callback.headers["X-Twilio-Signature"]
            )
            assert (await deliver(api, callback)).status_code == 200
        [row] = rows_of(api, sent.json()["id"])
        assert row["status"] == "delivered"
        assert count(api, events, events.c.type == "message.delivered") == 1
        assert [h["status"] for h in history(api.runtime, row["id"])][-1] == "delivered"


async def test_an_undelivered_callback_fails_the_recipient_with_its_code(
    api: Any, operator: Operator, tw: TwilioServer
) -> None:
    add_twilio(operator, "tw-us", tw)
    operator.add_route(["tw-us"], country="UG")
    tw.outcomes[UG] = ("undelivered", 30003)
    sent = await api.send(live_key(api), to=UG)
    async with serving(api):
        await api.drain()
        for callback in tw.take():
            assert (await deliver(api, callback)).status_code == 200
        [row] = rows_of(api, sent.json()["id"])
        assert (row["status"], row["error_code"]) == ("failed", "recipient_unreachable")
        assert count(api, events, events.c.type == "message.failed") == 1


@BOTH_DATABASES
async def test_an_unsubscribed_recipient_fails_for_good_and_is_suppressed(
    api: Any, operator: Operator, tw: TwilioServer
) -> None:
    add_twilio(operator, "tw-us", tw)
    operator.add_route(["tw-us"], country="UG")
    tw.opted_out.add(UG)  # texted STOP to the number before: Twilio answers 21610
    key = live_key(api)
    sent = await api.send(key, to=UG)
    async with serving(api):
        await api.drain()
        [row] = rows_of(api, sent.json()["id"])
        assert (row["status"], row["error_code"]) == ("failed", "recipient_opted_out")
        assert count(api, suppressions, suppressions.c.source == "carrier:tw-us") == 1
        again = await api.send(key, to=UG)
        assert again.json()["recipients"][0]["errorCode"] == "recipient_opted_out"
        assert len(tw.api_requests()) == 1


@BOTH_DATABASES
async def test_stop_start_and_help_through_twilio(
    api: Any, operator: Operator, tw: TwilioServer
) -> None:
    add_twilio(operator, "tw-us", tw)
    operator.add_route(["tw-us"], country="UG")
    async with serving(api):
        stop = await deliver(api, tw.incoming(UG, "STOP"))
        assert (stop.status_code, stop.content) == (200, EMPTY_TWIML)
        assert stop.headers["content-type"].startswith("text/xml")
        assert count(api, suppressions) == 1
        assert count(api, events, events.c.type == "contact.opted_out") == 1
        await api.drain()  # the confirmation: Twilio itself refuses it (21610) after STOP
        assert (await deliver(api, tw.incoming(UG, "START"))).status_code == 200
        assert count(api, suppressions) == 0
        assert (await deliver(api, tw.incoming(UG, "HELP"))).status_code == 200
        await api.drain()
        await eventually(lambda: len(tw.messages) == 2)  # START's confirmation, HELP's answer
        assert {m["to"] for m in tw.messages.values()} == {UG}
        assert {m["from"] for m in tw.messages.values()} == {SENDER}  # the number texted
        assert count(api, inbound_messages) == 3


async def test_server_errors_fail_over_to_the_next_carrier(
    api: Any, operator: Operator, tw: TwilioServer, second_tw: TwilioServer
) -> None:
    add_twilio(operator, "tw-a", tw, retry_budget=1)
    add_twilio(operator, "tw-b", second_tw)
    operator.add_route(["tw-a", "tw-b"], country="UG")
    tw.inject(Fault(503, times=5))
    sent = await api.send(live_key(api), to=UG)
    async with serving(api):
        await api.drain()
        [row] = rows_of(api, sent.json()["id"])
        assert (row["status"], row["carrier"]) == ("sent", "tw-b")
        assert row["carrier_message_id"] in second_tw.messages
        notes = [h["detail"] or "" for h in history(api.runtime, row["id"])]
        assert any("failover tw-a -> tw-b" in n and "HTTP 503 20503" in n for n in notes)


async def test_forged_replayed_and_misdirected_callbacks_are_refused_and_logged(
    api: Any,
    operator: Operator,
    tw: TwilioServer,
    second_tw: TwilioServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import dataclasses

    base = add_twilio(operator, "tw-a", tw)
    other = add_twilio(operator, "tw-b", second_tw)
    genuine = tw.incoming(UG, "STOP")
    forged = dataclasses.replace(genuine, form={**genuine.form, "Body": "START"})
    unsigned = dataclasses.replace(genuine, headers={})
    # Signed by tw-a's account for tw-a's URL, posted to tw-b's route.
    misdirected = dataclasses.replace(genuine, url=genuine.url.replace(base, other))
    wrong_key = second_tw.incoming(UG, "STOP", url=f"{base}/inbound")  # another account's token
    capsys.readouterr()
    for attempt in (forged, unsigned, misdirected, wrong_key):
        refused = await deliver(api, attempt)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
    assert (await deliver(api, genuine)).status_code == 200
    assert (await deliver(api, genuine)).status_code == 401  # replayed
    assert count(api, inbound_messages) == 1
    logged = "".join(capsys.readouterr())
    reasons = [
        line.split("reason=")[1].split()[0]
        for line in logged.splitlines()
        if "carrier_callback_refused" in line
    ]
    assert reasons == ["bad_signature", "unsigned", "bad_signature", "bad_signature", "replayed"]
    assert tw.auth_token not in logged
    assert genuine.headers["X-Twilio-Signature"] not in logged


async def test_credentials_never_reach_logs_errors_or_history(
    api: Any, operator: Operator, tw: TwilioServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from msgine.server.carriers._config import get_carrier

    secret = "k" * 32
    key = {"api_key_sid": "SK" + "2" * 32, "api_key_secret": secret}
    add_twilio(operator, "tw-us", tw, credentials=credentials(tw, **key))
    operator.add_route(["tw-us"], country="UG")
    sent = await api.send(live_key(api), to=UG)  # the API key is not the account's: 20003
    async with serving(api):
        await api.drain()
    [row] = rows_of(api, sent.json()["id"])
    assert (row["status"], row["error_code"]) == ("failed", "upstream_unauthorized")
    logged = "".join(capsys.readouterr())
    assert "submitted" in logged
    view = api.runtime.db.read(lambda c: get_carrier(c, api.runtime.vault, "tw-us"))
    notes = " ".join(h["detail"] or "" for h in history(api.runtime))
    assert "HTTP 401 20003" in notes
    for place in (logged, notes, repr(view), str(view)):
        for value in (secret, tw.auth_token, UG[1:]):
            assert value not in place
