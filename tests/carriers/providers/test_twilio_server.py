"""The Twilio test server is honest: the official ``twilio`` package, pointed at it, sends
through it and reads its answers and errors, and its ``RequestValidator`` accepts the signature
of every callback the server posts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from providers.provider_server import Fault, Sink, running
from providers.twilio_server import ERRORS, TwilioServer, signature

twilio_rest = pytest.importorskip("twilio.rest")
from twilio.base.exceptions import TwilioRestException  # noqa: E402
from twilio.http.http_client import TwilioHttpClient  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

US, UG = "+14155550123", "+256701521269"
SENDER = "+15005550006"


class LocalHttpClient(TwilioHttpClient):
    """The official HTTP client, with Twilio's API host replaced by the test server's."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        local = url.replace("https://api.twilio.com", self.base_url)
        return super().request(method, local, *args, **kwargs)


@pytest.fixture
def tw() -> Iterator[TwilioServer]:
    with running(TwilioServer()) as server:
        yield server


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running(Sink()) as server:
        yield server


def official(server: TwilioServer, auth_token: str | None = None) -> Any:
    return twilio_rest.Client(
        server.account_sid,
        auth_token or server.auth_token,
        http_client=LocalHttpClient(server.base_url),
    )


def test_the_official_client_creates_and_fetches_a_message(tw: TwilioServer) -> None:
    client = official(tw)
    message = client.messages.create(to=US, from_=SENDER, body="Hello")
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert (message.status, message.to, message.from_, message.body) == (
        "queued",
        US,
        SENDER,
        "Hello",
    )
    assert message.date_created is not None
    (request,) = tw.api_requests("/Messages.json")
    assert request.path == f"/2010-04-01/Accounts/{tw.account_sid}/Messages.json"
    assert request.headers["authorization"].startswith("Basic ")
    assert dict(request.form) == {"To": US, "From": SENDER, "Body": "Hello"}
    assert client.messages(message.sid).fetch().status == "queued"


def test_a_messaging_service_send_is_accepted(tw: TwilioServer) -> None:
    service = "MG" + "0" * 32
    message = official(tw).messages.create(to=US, messaging_service_sid=service, body="Hi")
    assert (message.status, message.messaging_service_sid) == ("accepted", service)


def test_wrong_credentials_are_refused_with_20003(tw: TwilioServer) -> None:
    with pytest.raises(TwilioRestException) as refused:
        official(tw, auth_token="0" * 32).messages.create(to=US, from_=SENDER, body="Hi")
    assert (refused.value.status, refused.value.code) == (401, 20003)
    assert tw.messages == {}


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"to": "12345", "from_": SENDER, "body": "Hi"}, 21211),
        ({"to": US, "body": "Hi"}, 21603),
        ({"to": US, "from_": SENDER}, 21602),
        ({"to": US, "from_": SENDER, "body": "x" * 1601}, 21617),
        ({"to": US, "from_": "+15550001111", "body": "Hi"}, 21606),
        ({"to": US, "from_": SENDER, "body": "Hi", "status_callback": "nope"}, 21609),
    ],
)
def test_invalid_requests_get_the_documented_error(
    tw: TwilioServer, form: dict[str, str], code: int
) -> None:
    with pytest.raises(TwilioRestException) as refused:
        official(tw).messages.create(**form)
    assert (refused.value.code, refused.value.status) == (code, ERRORS[code][0])
    assert refused.value.uri.endswith("/Messages.json")


@pytest.mark.parametrize("code", [21211, 21408, 21610, 21612, 21614])
def test_scripted_rejections_per_destination(tw: TwilioServer, code: int) -> None:
    tw.rejections[UG] = code
    with pytest.raises(TwilioRestException) as refused:
        official(tw).messages.create(to=UG, from_=SENDER, body="Hi")
    assert refused.value.code == code
    assert official(tw).messages.create(to=US, from_=SENDER, body="Hi").status == "queued"


def test_injected_faults_are_twilio_errors_with_retry_after(tw: TwilioServer) -> None:
    tw.inject(Fault(429, retry_after="3"), Fault(503))
    for status, code in ((429, 20429), (503, 20503)):
        with pytest.raises(TwilioRestException) as refused:
            official(tw).messages.create(to=US, from_=SENDER, body="Hi")
        assert (refused.value.status, refused.value.code) == (status, code)
    (throttled, _) = tw.api_requests()[:2]
    assert throttled.path.endswith("/Messages.json")
    assert official(tw).messages.create(to=US, from_=SENDER, body="Hi").status == "queued"


def test_status_callbacks_are_signed_as_twilio_signs_them(tw: TwilioServer, sink: Sink) -> None:
    tw.auto_callbacks = True
    tw.outcomes[UG] = ("undelivered", 30003)
    url = sink.url("/status?carrier=tw")
    delivered = official(tw).messages.create(to=US, from_=SENDER, body="a", status_callback=url)
    failed = official(tw).messages.create(to=UG, from_=SENDER, body="b", status_callback=url)
    tw.wait_sent(4)
    received = sink.wait_requests(4)
    validator = RequestValidator(tw.auth_token)
    by_sid: dict[str, list[dict[str, str]]] = {}
    for request in received:
        params = dict(request.form)
        assert validator.validate(url, params, request.headers["x-twilio-signature"])
        assert request.headers["i-twilio-idempotency-token"]
        by_sid.setdefault(params["MessageSid"], []).append(params)
    assert [p["MessageStatus"] for p in by_sid[delivered.sid]] == ["sent", "delivered"]
    assert [p["MessageStatus"] for p in by_sid[failed.sid]] == ["sent", "undelivered"]
    assert by_sid[failed.sid][-1]["ErrorCode"] == "30003"
    assert "ErrorCode" not in by_sid[delivered.sid][-1]
    assert official(tw).messages(failed.sid).fetch().error_code == 30003


def test_incoming_messages_are_signed_and_stop_blocks_later_sends(
    tw: TwilioServer, sink: Sink
) -> None:
    url = sink.url("/sms")
    callback = tw.incoming(UG, "stop", url=url)
    assert callback.send().status_code == 200
    (request,) = sink.wait_requests(1)
    params = dict(request.form)
    assert RequestValidator(tw.auth_token).validate(
        url, params, request.headers["x-twilio-signature"]
    )
    assert (params["From"], params["To"], params["Body"]) == (UG, SENDER, "stop")
    assert params["OptOutType"] == "STOP"
    with pytest.raises(TwilioRestException) as refused:
        official(tw).messages.create(to=UG, from_=SENDER, body="Hi")
    assert refused.value.code == 21610
    tw.incoming(UG, "START", url=url)
    assert official(tw).messages.create(to=UG, from_=SENDER, body="Hi").status == "queued"


def test_the_signature_matches_the_validator_and_breaks_with_any_change(tw: TwilioServer) -> None:
    validator = RequestValidator(tw.auth_token)
    url = "https://gw.example.com:8443/carriers/tw/status?x=1"
    params = {"MessageSid": "SM1", "MessageStatus": "delivered", "Body": "héllo & bye"}
    signed = signature(tw.auth_token, url, params)
    assert signed == validator.compute_signature(url, params)
    assert validator.validate(url, params, signed)
    assert not validator.validate(url, {**params, "MessageStatus": "failed"}, signed)
    assert not validator.validate(url.replace("tw", "tx"), params, signed)
    assert not RequestValidator("0" * 32).validate(url, params, signed)


def test_the_official_client_speaks_to_it_over_https(monkeypatch: pytest.MonkeyPatch) -> None:
    with running(TwilioServer(tls=True)) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path()))
        assert server.base_url.startswith("https://")
        assert official(server).messages.create(to=US, from_=SENDER, body="Hi").status == "queued"
