"""API3:2023 Broken object property level authorization: what each property shows, and where.

* Stored: a consent's ``source`` is encrypted and an idempotency key is kept only as a keyed
  hash, on both databases, and the migration converts rows stored before.
* Shown: a secret (API key, its hash, webhook secrets) appears in the one response that creates
  it and in no other response, error body or log line; personal data (numbers, consent source,
  message text) appears only where its owner asked for it, never in the audit trail or logs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from security_helpers import assert_absent, number_forms, stored_bytes

from msgine.server.crypto import load_master_keys
from msgine.server.crypto._datakeys import open_vault
from msgine.server.storage import Database
from msgine.server.storage._tables import accounts, consents, idempotency_keys
from support import Gateway

SOURCE = "stall 14 sign-up sheet, witnessed by Umutoni Kabanyana"
IDEMPOTENCY_KEY = "order-88231-for-kabanyana@example.org"
TO = "+256772938461"


async def test_consent_source_and_idempotency_keys_are_not_stored_in_plaintext(
    api: Any,
) -> None:
    consent = await api.client.put(
        f"/api/v1/consents/{TO}",
        json={"purpose": "marketing", "source": SOURCE},
        headers=api.headers(),
    )
    assert consent.status_code == 200, consent.text
    first = await api.send(to=TO, message="Hello", idempotencyKey=IDEMPOTENCY_KEY)
    assert first.status_code == 201, first.text

    assert_absent(stored_bytes(api), [SOURCE, IDEMPOTENCY_KEY, *number_forms(TO)])

    # The owner still gets both back: the source in the consent, the replay by its key.
    got = await api.client.get(f"/api/v1/consents/{TO}", headers=api.headers())
    assert got.json()["consents"][0]["source"] == SOURCE
    again = await api.send(to=TO, message="Hello", idempotencyKey=IDEMPOTENCY_KEY)
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await api.send(to=TO, message="Other", idempotencyKey=IDEMPOTENCY_KEY)
    assert other.status_code == 409


def _old_rows(conn: sa.Connection, vault: Any, now: datetime) -> None:
    """Rows as the schema before migration 0004 stored them."""
    conn.execute(sa.insert(accounts).values(id="acc_old", name="old", settings={}, created_at=now))
    conn.execute(
        sa.text(
            "INSERT INTO consents (id, account_id, phone, phone_index, purpose, source, "
            "granted_at) VALUES ('cns_old', 'acc_old', NULL, 'idx', 'marketing', :source, :at)"
        ),
        {"source": SOURCE, "at": now.replace(tzinfo=None)},
    )
    conn.execute(
        sa.text(
            "INSERT INTO idempotency_keys (account_id, key, request_hash, message_id, response, "
            "created_at, expires_at) VALUES ('acc_old', :key, 'h', 'msg_old', :response, :at, :at)"
        ),
        {
            "key": IDEMPOTENCY_KEY,
            "response": vault.encrypt(
                b'{"id":"msg_old"}',
                table="idempotency_keys",
                column="response",
                row_id=f"acc_old/{IDEMPOTENCY_KEY}",
            ),
            "at": now.replace(tzinfo=None),
        },
    )


@pytest.mark.empty_database
def test_the_migration_seals_rows_stored_before_it(settings: Any) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ring = load_master_keys(settings)
    db = Database(settings.sqlalchemy_url)
    try:
        db.migrate("0002")
        db.write(lambda conn: _old_rows(conn, open_vault(conn, ring), datetime.now(UTC)))
        db.migrate(vault=lambda conn: open_vault(conn, ring))
        vault = db.read(lambda conn: open_vault(conn, ring))
        consent = db.read(lambda conn: conn.execute(sa.select(consents)).mappings().one())
        idem = db.read(lambda conn: conn.execute(sa.select(idempotency_keys)).mappings().one())
    finally:
        db.close()
    assert SOURCE.encode() not in consent["source"]
    assert (
        vault.decrypt_str(consent["source"], table="consents", column="source", row_id="cns_old")
        == SOURCE
    )
    assert idem["key"] == vault.idempotency_hash("acc_old", IDEMPOTENCY_KEY)
    response = vault.decrypt(
        idem["response"],
        table="idempotency_keys",
        column="response",
        row_id=f"acc_old/{idem['key']}",
    )
    assert json.loads(response) == {"id": "msg_old"}


@pytest.mark.empty_database
def test_the_migration_will_not_convert_rows_without_the_master_key(settings: Any) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ring = load_master_keys(settings)
    db = Database(settings.sqlalchemy_url)
    try:
        db.migrate("0002")
        db.write(lambda conn: _old_rows(conn, open_vault(conn, ring), datetime.now(UTC)))
        with pytest.raises(RuntimeError, match="needs the master key"):
            db.migrate()
        # Nothing was half-done: the rows are as they were, ready for a proper run.
        source = db.read(lambda c: c.exec_driver_sql("SELECT source FROM consents").scalar())
        assert source == SOURCE
    finally:
        db.close()


# --- what responses and logs show ---------------------------------------------------------


def _all_responses(gw: Gateway) -> tuple[dict[str, str], list[httpx.Response]]:
    """Drive the API as a client would; the secrets it was given, and every other response."""
    h = {"X-Api-Key": gw.api_key}
    base = gw.base_url
    given: dict[str, str] = {"callerKey": gw.api_key}
    seen: list[httpx.Response] = []
    with httpx.Client(base_url=base, headers=h, timeout=10) as c:
        made = c.post("/keys", json={"name": "second"})
        assert made.status_code == 201, made.text
        given["newKey"] = made.json()["key"]
        hook = c.post("/webhooks", json={"url": "https://127.0.0.1:9/hook"})
        assert hook.status_code == 201, hook.text
        given["webhookSecret"] = hook.json()["secret"]
        rotated = c.post(f"/webhooks/{hook.json()['id']}/rotate-secret", json={"graceHours": 1})
        given["rotatedSecret"] = rotated.json()["secret"]
        account = c.post("/account/webhook-secret")
        given["accountSecret"] = account.json()["secret"]
        seen += [
            c.get("/keys"),
            c.get("/webhooks"),
            c.get(f"/webhooks/{hook.json()['id']}"),
            c.get(f"/webhooks/{hook.json()['id']}/deliveries"),
            c.put(f"/consents/{TO}", json={"purpose": "marketing", "source": SOURCE}),
            c.post("/messages/sms", json={"to": TO, "message": "Quiet words 5521"}),
            c.get("/audit", params={"limit": 200}),
            c.get("/account/policy"),
            c.get("/suppressions"),
            # Errors must not echo what they refuse.
            c.post("/messages/sms", json={"to": "+25677293846199999", "message": "Hi"}),
            c.put("/consents/+2567729x", json={"purpose": "marketing", "source": SOURCE}),
            c.get("/keys", headers={"X-Api-Key": given["newKey"] + "x"}),
        ]
    return given, seen


@pytest.mark.slow
def test_secrets_and_personal_data_stay_in_their_one_response(gateway: Gateway) -> None:
    given, responses = _all_responses(gateway)
    consent_text, send_text, audit_text, *rest = (r.text for r in responses[4:])
    lists = [r.text for r in responses[:4]]
    secrets = list(given.values())
    for text in [*lists, audit_text, *rest]:
        for secret in secrets:
            assert secret not in text
            assert secret.removeprefix("whsec_") not in text
    # Personal data: only the consent route (its owner) and the send answer show them.
    assert SOURCE in consent_text and TO in send_text
    for text in [*lists, audit_text, *rest]:
        for value in [SOURCE, "Quiet words 5521", *number_forms(TO)[:2]]:
            assert value not in text
    gateway.stop()
    logs = "".join(p.read_text() for p in Path(gateway.root).glob("gateway-*.log"))
    assert "request" in logs  # the access log is there to be searched
    for value in [*secrets, SOURCE, "Quiet words 5521", *number_forms(TO)[:2]]:
        assert value not in logs
