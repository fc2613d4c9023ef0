"""Personal data and secrets never reach the database files in plaintext, yet their owner gets
them back through the API. Checked on the raw bytes of SQLite (database and WAL) and on a
``pg_dump`` of the test's PostgreSQL database."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from security_helpers import assert_absent, number_forms, stored_bytes

OUT_TEXT = "Zanzibar-quokka 4417 pickled mango code"
IN_TEXT = "Heliotrope walrus 9902 reply from the field"
EVIDENCE = "signed paper form kept in cabinet Ostrich-3381"
CONSENT_SOURCE = "kiosk 7 at Nakasero, clerk Pelican-5127"
IDEMPOTENCY_KEY = "plaintext-check-Marmoset-6630"
TO = "+256772938461"
FROM = "+256783514297"
SENDER = "QzSendr1"


async def test_messages_and_inbound_are_not_stored_in_plaintext(api: Any) -> None:
    sent = await api.send(
        to=TO, message=OUT_TEXT, idempotencyKey=IDEMPOTENCY_KEY, **{"from": SENDER}
    )
    assert sent.status_code == 201, sent.text
    inbound = await api.client.post(
        "/api/v1/simulator/inbound",
        json={"from": FROM, "message": IN_TEXT},
        headers=api.headers(),
    )
    assert inbound.status_code == 201, inbound.text
    await api.drain()

    blob = stored_bytes(api)
    # Control: the sender ID is stored as plain text by design, so the search does see data.
    assert SENDER.encode() in blob
    assert_absent(
        blob, [OUT_TEXT, IN_TEXT, IDEMPOTENCY_KEY, *number_forms(TO), *number_forms(FROM)]
    )

    got = await api.client.get(f"/api/v1/messages/{sent.json()['id']}", headers=api.headers())
    assert got.status_code == 200
    assert got.json()["content"] == OUT_TEXT
    assert got.json()["to"] == [TO]
    assert got.json()["status"] == "delivered"
    export = await api.client.get(
        "/api/v1/privacy/export", params={"phone": FROM}, headers=api.headers()
    )
    assert export.status_code == 200, export.text
    assert IN_TEXT in export.text


async def test_consent_evidence_and_webhook_secrets_are_not_stored_in_plaintext(
    api: Any,
) -> None:
    consent = await api.client.put(
        f"/api/v1/consents/{TO}",
        json={"purpose": "marketing", "source": CONSENT_SOURCE, "evidence": EVIDENCE},
        headers=api.headers(),
    )
    assert consent.status_code == 200, consent.text
    hook = await api.client.post(
        "/api/v1/webhooks", json={"url": "https://127.0.0.1:9/hook"}, headers=api.headers()
    )
    assert hook.status_code == 201, hook.text
    secret = hook.json()["secret"]
    secret_b64 = secret.removeprefix("whsec_")
    rotated = await api.client.post("/api/v1/account/webhook-secret", headers=api.headers())
    assert rotated.status_code in (200, 201), rotated.text
    account_secret = rotated.json()["secret"]

    assert_absent(
        stored_bytes(api),
        [EVIDENCE, CONSENT_SOURCE, *number_forms(TO), secret, secret_b64, account_secret],
        raw=(base64.b64decode(secret_b64),),
    )
    got = await api.client.get(f"/api/v1/consents/{TO}", headers=api.headers())
    assert got.status_code == 200
    assert EVIDENCE in got.text
    assert CONSENT_SOURCE in got.text


@pytest.mark.parametrize("value", ["+256772938461"])
def test_number_forms_cover_the_usual_spellings(value: str) -> None:
    assert number_forms(value) == [
        "+256772938461",
        "256772938461",
        "0772938461",
        "772938461",
        "772 938461",
        "+256 772 938461",
    ]
