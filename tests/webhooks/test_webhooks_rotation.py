"""Secret rotation: during the grace period receivers holding either secret verify; after it, only
the new one does. Secrets never reach logs or audit details."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from webhooks_helpers import (
    create_endpoint,
    hex_verifies,
    read_text,
    security_entries,
    standard_verifies,
)

from msgine.server.storage._tables import audit_log
from webhook_receiver import Receiver


async def _one_delivery(api: Any, receiver: Receiver, path: str = "/hook", **send: Any) -> Any:
    before = len(receiver.hits_for(path))
    await api.send(**send)
    await api.drain()
    hits = receiver.hits_for(path)
    assert len(hits) > before
    return hits[-1]


async def test_endpoint_rotation_grace_period(api: Any, receiver: Receiver) -> None:
    endpoint = await create_endpoint(api, receiver.url(), events=["message.sent"])
    old = endpoint["secret"]
    response = await api.client.post(
        f"/api/v1/webhooks/{endpoint['id']}/rotate-secret",
        json={"graceHours": 2},
        headers=api.headers(),
    )
    assert response.status_code == 200, response.text
    new = response.json()["secret"]
    assert new != old
    assert new.startswith("whsec_")
    assert response.json()["previousSecretExpiresAt"] is not None

    during = await _one_delivery(api, receiver)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert standard_verifies(secret, during)
    # x-msgine-signature: always one value, with the secret receivers are known to hold.
    assert re.fullmatch(r"[0-9a-f]{64}", during.headers["x-msgine-signature"])
    assert hex_verifies(old, during)
    assert not hex_verifies(new, during)

    api.runtime.clock.advance(hours=2, minutes=1)
    after = await _one_delivery(api, receiver)
    assert standard_verifies(new, after)
    assert hex_verifies(new, after)
    assert not standard_verifies(old, after)
    assert not hex_verifies(old, after)


async def test_rotation_without_grace_drops_the_old_secret_at_once(
    api: Any, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(api, receiver.url(), events=["message.sent"])
    response = await api.client.post(
        f"/api/v1/webhooks/{endpoint['id']}/rotate-secret",
        json={"graceHours": 0},
        headers=api.headers(),
    )
    new = response.json()["secret"]
    assert response.json()["previousSecretExpiresAt"] is None
    hit = await _one_delivery(api, receiver)
    assert standard_verifies(new, hit)
    assert not standard_verifies(endpoint["secret"], hit)


async def test_account_secret_rotation_grace_period(api: Any, receiver: Receiver) -> None:
    first = await api.client.post("/api/v1/account/webhook-secret", headers=api.headers())
    old = first.json()["secret"]
    assert first.json()["previousSecretExpiresAt"] is None  # the first call creates it
    second = await api.client.post(
        "/api/v1/account/webhook-secret", json={"graceHours": 1}, headers=api.headers()
    )
    new = second.json()["secret"]
    during = await _one_delivery(api, receiver, "/cb", callbackUrl=receiver.url("/cb"))
    assert standard_verifies(old, during)
    assert standard_verifies(new, during)
    api.runtime.clock.advance(hours=1, seconds=1)
    after = await _one_delivery(api, receiver, "/cb", callbackUrl=receiver.url("/cb"))
    assert standard_verifies(new, after)
    assert not standard_verifies(old, after)


async def test_rotations_are_audited_and_logged_without_the_secret(
    api: Any, receiver: Receiver, security_log: Path
) -> None:
    endpoint = await create_endpoint(api, receiver.url())
    rotated = await api.client.post(
        f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", headers=api.headers()
    )
    account = await api.client.post("/api/v1/account/webhook-secret", headers=api.headers())
    secrets = [endpoint["secret"], rotated.json()["secret"], account.json()["secret"]]
    [entry] = security_entries(security_log, "webhook_secret_rotated")
    assert entry["target"] == endpoint["id"]
    assert security_entries(security_log, "webhook_account_secret_rotated")
    log_text = read_text(security_log)
    audit = api.runtime.db.read(
        lambda conn: [dict(r) for r in conn.execute(sa.select(audit_log)).mappings()]
    )
    actions = {row["action"] for row in audit}
    assert {"webhook.secret_rotated", "webhook.account_secret_rotated"} <= actions
    for secret in secrets:
        assert secret not in log_text
        assert secret.removeprefix("whsec_") not in str(audit)


def test_secrets_and_bodies_stay_out_of_reprs() -> None:
    from datetime import UTC, datetime

    from msgine.server.webhooks._dispatch import Prepared
    from msgine.server.webhooks._endpoints import NewSecret
    from msgine.webhooks._signing import generate_secret

    secret = generate_secret()
    shown = NewSecret("we_1", secret, datetime.now(UTC))
    item = Prepared({"id": "whd_1"}, "https://example.com/x", b'{"to":"+256701521269"}', (secret,))
    for value in (shown, item):
        assert secret not in repr(value)
        assert secret.removeprefix("whsec_") not in repr(value)
    assert "+256701521269" not in repr(item)
