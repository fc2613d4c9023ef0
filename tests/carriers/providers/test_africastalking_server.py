"""The Africa's Talking test server is honest: the official ``africastalking`` package, pointed
at it, sends through it and reads its answers; its callbacks carry the documented fields."""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree import ElementTree

import httpx
import pytest
from providers.africastalking_server import STATUS_NAMES, AfricasTalkingServer
from providers.provider_server import Fault, Sink, running

africastalking = pytest.importorskip("africastalking")

KE, UG = "+254712345678", "+256701521269"


@pytest.fixture
def at() -> Iterator[AfricasTalkingServer]:
    with running(AfricasTalkingServer(senders={"MsGine", "40404"})) as server:
        yield server


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running(Sink()) as server:
        yield server


def official(server: AfricasTalkingServer, api_key: str | None = None) -> object:
    """The official SMS service, its production base URL pointed at the test server."""
    sms = africastalking.SMSService(server.username, api_key or server.api_key)
    sms._baseUrl = server.base_url + "/version1"
    return sms


def test_the_official_client_sends_to_several_numbers_in_one_call(at: AfricasTalkingServer) -> None:
    answer = official(at).send("Hello", [KE, UG], sender_id="MsGine")
    data = answer["SMSMessageData"]
    assert data["Message"] == "Sent to 2/2 Total Cost: KES 1.6000"
    assert [r["number"] for r in data["Recipients"]] == [KE, UG]
    for recipient in data["Recipients"]:
        assert (recipient["statusCode"], recipient["status"]) == (101, "Success")
        assert recipient["messageId"].startswith("ATXid_")
        assert recipient["cost"] == "KES 0.8000"
    (request,) = at.api_requests("/version1/messaging")
    assert request.headers["apikey"] == at.api_key
    assert dict(request.form) == {
        "username": at.username,
        "to": f"{KE},{UG}",
        "message": "Hello",
        "bulkSMSMode": "1",
        "from": "MsGine",
    }
    assert [m.number for m in at.messages] == [KE, UG]


def test_a_wrong_api_key_or_username_is_refused(at: AfricasTalkingServer) -> None:
    with pytest.raises(africastalking.Service.AfricasTalkingException, match="authentication"):
        official(at, api_key="wrong").send("Hi", [KE])
    other = africastalking.SMSService("someone-else", at.api_key)
    other._baseUrl = at.base_url + "/version1"
    with pytest.raises(africastalking.Service.AfricasTalkingException, match="authentication"):
        other.send("Hi", [KE])
    assert at.messages == []


@pytest.mark.parametrize("code", sorted(c for c in STATUS_NAMES if c >= 400))
def test_per_recipient_rejections_carry_their_code_and_name(
    at: AfricasTalkingServer, code: int
) -> None:
    at.rejections[UG] = code
    recipients = official(at).send("Hi", [KE, UG])["SMSMessageData"]["Recipients"]
    assert (recipients[0]["statusCode"], recipients[1]["statusCode"]) == (101, code)
    assert recipients[1]["status"] == STATUS_NAMES[code]
    assert (recipients[1]["messageId"], recipients[1]["cost"]) == ("None", "0")


def test_an_unregistered_sender_id_is_refused_for_every_recipient(at: AfricasTalkingServer) -> None:
    recipients = official(at).send("Hi", [KE, UG], sender_id="Unknown")["SMSMessageData"]
    assert {r["statusCode"] for r in recipients["Recipients"]} == {402}
    assert recipients["Message"] == "Sent to 0/2 Total Cost: KES 0.0000"


def test_injected_faults_answer_once_then_the_api_works(at: AfricasTalkingServer) -> None:
    at.inject(Fault(503), Fault(429, retry_after="7"))
    with pytest.raises(africastalking.Service.AfricasTalkingException):
        official(at).send("Hi", [KE])
    raw = httpx.post(
        at.base_url + "/version1/messaging",
        data={"username": at.username, "to": KE, "message": "Hi"},
        headers={"apiKey": at.api_key, "Accept": "application/json"},
    )
    assert (raw.status_code, raw.headers["retry-after"]) == (429, "7")
    assert official(at).send("Hi", [KE])["SMSMessageData"]["Recipients"][0]["statusCode"] == 101


def test_missing_fields_and_xml_answers_follow_the_documentation(at: AfricasTalkingServer) -> None:
    url = at.base_url + "/version1/messaging"
    headers = {"apiKey": at.api_key}
    missing = httpx.post(url, data={"username": at.username, "to": KE}, headers=headers)
    assert missing.status_code == 400
    assert "message" in missing.text
    xml = httpx.post(url, data={"username": at.username, "to": KE, "message": "x"}, headers=headers)
    assert xml.status_code == 201
    recipient = ElementTree.fromstring(xml.content).find("./SMSMessageData/Recipients/Recipient")
    assert recipient is not None
    assert recipient.findtext("statusCode") == "101"


def test_delivery_reports_reach_the_configured_url(at: AfricasTalkingServer, sink: Sink) -> None:
    at.auto_callbacks = True
    at.delivery_reports_url = sink.url("/dlr")
    at.outcomes[UG] = ("Failed", "UserInBlackList")
    recipients = official(at).send("Hi", [KE, UG])["SMSMessageData"]["Recipients"]
    at.wait_sent(2)
    reports = {r.field("phoneNumber"): dict(r.form) for r in sink.wait_requests(2)}
    assert reports[KE] == {
        "id": recipients[0]["messageId"],
        "status": "Success",
        "phoneNumber": KE,
        "networkCode": "63902",
        "retryCount": "0",
    }
    assert reports[UG]["status"] == "Failed"
    assert reports[UG]["failureReason"] == "UserInBlackList"
    assert reports[UG]["networkCode"] == "64110"
    assert {status for _, status in at.sent} == {200}


def test_incoming_messages_and_opt_outs_carry_the_documented_fields(
    at: AfricasTalkingServer, sink: Sink
) -> None:
    inbound = at.incoming(KE, "STOP", url=sink.url("/in")).send()
    opt_out = at.opt_out(KE, "MsGine", url=sink.url("/optout")).send()
    assert (inbound.status_code, opt_out.status_code) == (200, 200)
    first, second = sink.wait_requests(2)
    assert set(dict(first.form)) == {"from", "to", "text", "date", "id", "linkId", "networkCode"}
    assert (first.field("from"), first.field("text"), first.field("to")) == (KE, "STOP", "40404")
    assert dict(second.form) == {"senderId": "MsGine", "phoneNumber": KE}
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"


def test_the_official_client_speaks_to_it_over_https(monkeypatch: pytest.MonkeyPatch) -> None:
    with running(AfricasTalkingServer(tls=True)) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path()))
        answer = official(server).send("Hi", [KE])
        assert server.base_url.startswith("https://")
        assert answer["SMSMessageData"]["Recipients"][0]["statusCode"] == 101
