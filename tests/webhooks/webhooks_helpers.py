"""Helpers for the webhook tests: endpoint set-up and independent signature checks."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from webhook_receiver import Hit

__all__ = ["WebhookVerificationError", "create_endpoint", "hex_verifies", "standard_verifies"]


async def create_endpoint(api: Any, url: str, **body: Any) -> dict[str, Any]:
    response = await api.client.post(
        "/api/v1/webhooks", json={"url": url, **body}, headers=api.headers()
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def standard_verifies(secret: str, hit: Hit) -> bool:
    """Checked with the PyPI ``standardwebhooks`` library, not with MsGine's own code."""
    try:
        Webhook(secret).verify(hit.body, hit.headers)
    except WebhookVerificationError:
        return False
    return True


def hex_verifies(secret: str, hit: Hit) -> bool:
    """A plain hex HMAC-SHA256 of the raw body, keyed with the whole secret string."""
    expected = hmac.new(secret.encode(), hit.body, hashlib.sha256).hexdigest()
    offered = hit.headers["x-msgine-signature"].split(" ")
    return any(hmac.compare_digest(expected, value) for value in offered)


async def deliveries(api: Any, endpoint_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await api.client.get(
        f"/api/v1/webhooks/{endpoint_id}/deliveries", params=params, headers=api.headers()
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["deliveries"]
    return found


def security_entries(path: Path, event: str) -> list[dict[str, Any]]:
    """The security log's entries named ``event`` (JSON lines)."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [entry for entry in lines if entry.get("event") == event]


def read_text(path: Path) -> str:
    return path.read_text()
