"""FastAPI, Flask and Django integrations, each driven by its framework's own test client."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from msgine.webhooks import (
    IpAllowList,
    MemoryDedupeStore,
    encode_body,
    generate_secret,
    signature_headers,
)

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

SECRET = generate_secret()
PHONE = "+256701521269"
ALLOW = IpAllowList(["203.0.113.0/24"])
GOOD_IP, BAD_IP = "203.0.113.7", "198.51.100.9"


@dataclass
class Harness:
    """One framework app; ``post`` sends a raw delivery from a given address."""

    post: Callable[[bytes, dict[str, str], str], tuple[int, Any]]
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[bool] = field(default_factory=list)


def handle(harness_state: Harness, event: dict[str, Any]) -> None:
    if harness_state.fail_next:
        harness_state.fail_next.pop()
        raise RuntimeError("handler crashed")
    harness_state.calls.append(event)


def receiver_options() -> dict[str, Any]:
    return {"secret": SECRET, "dedupe": MemoryDedupeStore(), "allow_list": ALLOW}


def fastapi_harness() -> Harness:
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from msgine.webhooks.fastapi import webhook_dependency

    app = FastAPI()
    receive = webhook_dependency(**receiver_options())
    state = Harness(post=lambda *a: (0, None))

    @app.post("/hook")
    def hook(event: dict[str, Any] = Depends(receive)) -> dict[str, str]:
        handle(state, event)
        return {"ok": "yes"}

    def post(body: bytes, headers: dict[str, str], ip: str) -> tuple[int, Any]:
        client = TestClient(app, client=(ip, 40000), raise_server_exceptions=False)
        response = client.post("/hook", content=body, headers=headers)
        is_json = response.headers.get("content-type", "").startswith("application/json")
        return response.status_code, response.json() if is_json else None

    state.post = post
    return state


def flask_harness() -> Harness:
    from flask import Flask

    from msgine.webhooks.flask import webhook_endpoint

    app = Flask(__name__)
    state = Harness(post=lambda *a: (0, None))

    @app.post("/hook")
    @webhook_endpoint(**receiver_options())
    def hook(event: dict[str, Any]) -> dict[str, str]:
        handle(state, event)
        return {"ok": "yes"}

    def post(body: bytes, headers: dict[str, str], ip: str) -> tuple[int, Any]:
        response = app.test_client().post(
            "/hook", data=body, headers=headers, environ_base={"REMOTE_ADDR": ip}
        )
        return response.status_code, response.get_json(silent=True)

    state.post = post
    return state


def django_harness() -> Harness:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF=__name__,
            SECRET_KEY="django-test-only-not-a-secret",
            MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
            LOGGING_CONFIG=None,
        )
        django.setup()
    from django.http import JsonResponse
    from django.test import Client
    from django.urls import path

    from msgine.webhooks.django import webhook_view

    state = Harness(post=lambda *a: (0, None))

    @webhook_view(**receiver_options())
    def hook(request: Any, event: dict[str, Any]) -> JsonResponse:
        handle(state, event)
        return JsonResponse({"ok": "yes"})

    global urlpatterns
    urlpatterns = [path("hook", hook)]
    from django.urls import clear_url_caches

    clear_url_caches()

    def post(body: bytes, headers: dict[str, str], ip: str) -> tuple[int, Any]:
        client = Client(enforce_csrf_checks=True, raise_request_exception=False)
        response = client.post(
            "/hook", data=body, content_type="application/json", headers=headers, REMOTE_ADDR=ip
        )
        is_json = response.get("Content-Type", "").startswith("application/json")
        return response.status_code, response.json() if is_json else None

    state.post = post
    return state


urlpatterns: list[Any] = []


@pytest.fixture(params=["fastapi", "flask", "django"])
def harness(request: pytest.FixtureRequest) -> Harness:
    factory = {"fastapi": fastapi_harness, "flask": flask_harness, "django": django_harness}
    return factory[request.param]()


def delivery(event_id: str = "evt_1", secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = encode_body({"id": event_id, "event": "message.delivered", "to": PHONE})
    return body, signature_headers([secret], event_id, int(time.time()), body)


def test_valid_delivery_reaches_the_handler_once(harness: Harness) -> None:
    body, headers = delivery()
    assert harness.post(body, headers, GOOD_IP) == (200, {"ok": "yes"})
    status, answer = harness.post(body, headers, GOOD_IP)
    assert status == 200
    assert answer.get("detail", answer) == {"status": "duplicate"}  # FastAPI nests it in "detail"
    assert [event["id"] for event in harness.calls] == ["evt_1"]


def test_bad_signature_is_401_and_logged_without_secrets(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    body, headers = delivery(secret=generate_secret())
    with caplog.at_level(logging.INFO, logger="msgine.security"):
        status, _ = harness.post(body, headers, GOOD_IP)
    assert status == 401
    assert harness.calls == []
    refusals = [
        r for r in caplog.records if getattr(r, "security_event", None) == "webhook_refused"
    ]
    assert [r.reason for r in refusals] == ["no_matching_signature"]  # type: ignore[attr-defined]
    assert refusals[0].client_ip == GOOD_IP  # type: ignore[attr-defined]
    logged = caplog.text + repr([r.__dict__ for r in caplog.records])
    for secret_text in (SECRET, SECRET[6:], headers["webhook-signature"], PHONE):
        assert secret_text not in logged


def test_stale_delivery_is_401(harness: Harness) -> None:
    body = encode_body({"id": "evt_old", "event": "message.sent"})
    headers = signature_headers([SECRET], "evt_old", int(time.time()) - 3600, body)
    assert harness.post(body, headers, GOOD_IP)[0] == 401
    assert harness.calls == []


def test_address_outside_the_allow_list_is_403(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    body, headers = delivery()
    with caplog.at_level(logging.INFO, logger="msgine.security"):
        assert harness.post(body, headers, BAD_IP)[0] == 403
    assert harness.calls == []
    assert any(getattr(r, "reason", None) == "ip_not_allowed" for r in caplog.records)


def test_failed_handler_releases_the_event_for_the_retry(harness: Harness) -> None:
    body, headers = delivery("evt_retry")
    harness.fail_next.append(True)
    assert harness.post(body, headers, GOOD_IP)[0] == 500
    assert harness.post(body, headers, GOOD_IP) == (200, {"ok": "yes"})
    assert [event["id"] for event in harness.calls] == ["evt_retry"]
