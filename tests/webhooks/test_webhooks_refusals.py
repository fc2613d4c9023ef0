"""URL policy at registration and again at delivery; redirects are never followed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from webhooks_helpers import create_endpoint, deliveries, security_entries

from msgine.server.storage._tables import webhook_attempts
from msgine.server.webhooks._dispatch import Dispatcher
from msgine.server.webhooks._urlpolicy import UrlPolicy
from webhook_receiver import Receiver, Reply

REFUSED = [
    "https://127.0.0.1/hook",
    "https://[::1]/hook",
    "https://10.1.2.3/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://localhost/hook",
]


@pytest.fixture
def strict(api: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The gateway as deployed: private targets not allowed."""
    monkeypatch.setattr(api.runtime.settings, "webhook_allow_private", False)
    return api


async def test_http_urls_are_refused(api: Any) -> None:
    response = await api.client.post(
        "/api/v1/webhooks", json={"url": "http://example.com/hook"}, headers=api.headers()
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "insecure_callback_url"


@pytest.mark.parametrize("url", REFUSED)
async def test_private_and_metadata_targets_are_refused(strict: Any, url: str) -> None:
    response = await strict.client.post(
        "/api/v1/webhooks", json={"url": url}, headers=strict.headers()
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "insecure_callback_url"
    assert "127.0.0.1" not in response.text.replace(url, "")


async def test_private_targets_refused_on_update_too(
    api: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await create_endpoint(api, receiver.url())
    monkeypatch.setattr(api.runtime.settings, "webhook_allow_private", False)
    response = await api.client.patch(
        f"/api/v1/webhooks/{created['id']}",
        json={"url": "https://10.0.0.1/x"},
        headers=api.headers(),
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "insecure_callback_url"


async def test_refused_url_is_a_security_event(strict: Any, security_log: Path) -> None:
    await strict.client.post("/api/v1/webhooks", json={"url": REFUSED[3]}, headers=strict.headers())
    [entry] = security_entries(security_log, "webhook_url_refused")
    assert entry["reason"] == "metadata_address"


async def test_the_policy_is_checked_again_at_delivery(api: Any, receiver: Receiver) -> None:
    """Registered while allowed; a dispatcher that refuses private targets never connects."""
    created = await create_endpoint(api, receiver.url(), events=["message.sent"])
    await api.send()
    while await api.worker.run_once():
        pass
    dispatcher = Dispatcher(api.runtime, policy=UrlPolicy(allow_private=False))
    try:
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.aclose()
    assert receiver.hits_for() == []
    [delivery] = await deliveries(api, created["id"])
    assert delivery["status"] == "pending"
    assert delivery["attemptLog"][0]["error"] == "refused_address"
    assert delivery["attemptLog"][0]["statusCode"] is None


async def test_a_redirect_is_not_followed(api: Any, receiver: Receiver) -> None:
    created = await create_endpoint(api, receiver.url("/redirect"), events=["message.sent"])
    await api.send()
    await api.drain()
    assert len(receiver.hits_for("/redirect")) == 1
    assert receiver.hits_for("/target") == []
    [delivery] = await deliveries(api, created["id"])
    assert delivery["status"] == "pending"
    assert delivery["lastStatusCode"] == 302
    assert delivery["attemptLog"][0]["error"] == "redirect_not_followed"


async def test_attempt_log_keeps_only_a_short_excerpt(api: Any, receiver: Receiver) -> None:
    receiver.script("/hook", Reply(500, body=b"E" * 10_000))
    created = await create_endpoint(api, receiver.url(), events=["message.sent"])
    await api.send()
    await api.drain()
    [delivery] = await deliveries(api, created["id"])
    [attempt] = delivery["attemptLog"]
    assert attempt["statusCode"] == 500
    assert attempt["error"] == "http_500"
    assert 0 < len(attempt["responseExcerpt"]) <= 256
    assert attempt["latencyMs"] >= 0
    stored = api.runtime.db.read(
        lambda conn: conn.execute(sa.select(webhook_attempts.c.excerpt)).scalar_one()
    )
    assert len(stored) <= 256
