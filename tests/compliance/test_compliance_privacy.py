"""GDPR export and erasure through the API, on both databases, and what is left on disk."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from compliance_helpers import OTHER, PHONE

from msgine.server.storage._tables import (
    audit_log,
    consents,
    events,
    idempotency_keys,
    inbound_messages,
    messages,
    recipients,
    suppressions,
    webhook_deliveries,
)

EMPTY = {
    "messages": [],
    "inboundMessages": [],
    "consents": [],
    "suppression": None,
    "events": [],
    "webhookDeliveries": [],
}


async def _export(api: Any, phone: str = PHONE) -> dict[str, Any]:
    response = await api.client.get(
        "/api/v1/privacy/export", params={"phone": phone}, headers=api.headers()
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _erase(api: Any, phone: str = PHONE) -> dict[str, Any]:
    response = await api.client.post(
        "/api/v1/privacy/erase", json={"phone": phone}, headers=api.headers()
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _history(api: Any, comp: Any) -> dict[str, str]:
    """A person with a bit of everything: consent, messages, an inbound HELP, a webhook."""
    hook = await api.client.post(
        "/api/v1/webhooks", json={"url": "https://127.0.0.1:9/hooks"}, headers=api.headers()
    )
    assert hook.status_code == 201, hook.text
    await comp.consent(PHONE, evidence="ticked box on form 7")
    sent = await api.send(to=PHONE, message="Order 5521 shipped", idempotencyKey="order-5521")
    help_reply = await comp.inbound("HELP")
    await api.drain()
    return {"message": sent.json()["id"], "help": help_reply["replyMessageId"]}


async def test_export_then_erase_then_export_shows_nothing(api: Any, comp: Any) -> None:
    ids = await _history(api, comp)
    other = (await api.send(to=OTHER, message="Someone else's text")).json()

    export = await _export(api)
    assert export["phone"] == PHONE
    assert {m["id"] for m in export["messages"]} == {ids["message"], ids["help"]}
    sent = next(m for m in export["messages"] if m["id"] == ids["message"])
    assert (sent["to"], sent["content"], sent["status"]) == (
        PHONE,
        "Order 5521 shipped",
        "delivered",
    )
    assert [i["text"] for i in export["inboundMessages"]] == ["HELP"]
    assert export["inboundMessages"][0]["from"] == PHONE
    assert export["consents"][0]["evidence"] == "ticked box on form 7"
    assert export["suppression"] is None
    types = {e["type"] for e in export["events"]}
    assert {"message.sent", "message.delivered"} <= types
    assert all(e["body"]["to"] == PHONE for e in export["events"] if e["type"] == "message.sent")
    assert export["webhookDeliveries"]
    assert {d["eventId"] for d in export["webhookDeliveries"]} <= {
        e["id"] for e in export["events"]
    }
    assert other["id"] not in {m["id"] for m in export["messages"]}

    erased = await _erase(api)
    assert erased["erased"] is True
    assert erased["recipients"] == 2
    assert erased["inboundMessages"] == 1
    assert erased["consents"] == 1
    assert erased["suppressionKept"] is False

    after = await _export(api)
    assert {k: after[k] for k in EMPTY} == EMPTY

    # Statuses, segments and costs stay; the number and text do not.
    kept = await comp.message(ids["message"])
    assert (kept["status"], kept["to"], kept["content"]) == ("delivered", [None], None)
    assert kept["cost"] == 30
    assert comp.rows(idempotency_keys) == []
    # The other person's data is untouched.
    assert (await comp.message(other["id"]))["content"] == "Someone else's text"
    assert (await _export(api, OTHER))["messages"]


async def test_erased_rows_hold_no_personal_data(api: Any, comp: Any) -> None:
    ids = await _history(api, comp)
    await _erase(api)
    index = api.runtime.vault.blind_index(api.account_id, PHONE)
    for rid in (ids["message"], ids["help"]):
        row = comp.rows(messages, messages.c.id == rid)[0]
        assert row["content"] is None
        assert row["purged_at"] is not None
    for row in comp.rows(recipients):
        assert row["phone"] is None
        assert row["phone_index"] != index
    assert comp.rows(inbound_messages) == []
    assert comp.rows(consents) == []
    assert comp.rows(webhook_deliveries) == []
    for row in comp.rows(events):
        assert row["body"] is None
        assert row["phone_index"] is None


async def test_opted_out_person_keeps_only_the_keyed_block(api: Any, comp: Any) -> None:
    await comp.inbound("STOP")
    erased = await _erase(api)
    assert erased["suppressionKept"] is True
    row = comp.rows(suppressions)[0]
    assert row["phone"] is None
    assert row["phone_index"] == api.runtime.vault.blind_index(api.account_id, PHONE)

    blocked = (await api.send(to=PHONE)).json()["recipients"][0]
    assert (blocked["status"], blocked["errorCode"]) == ("rejected", "recipient_opted_out")
    after = await _export(api)
    assert after["suppression"] == {**after["suppression"], "phone": None, "erased": True}
    assert after["suppression"]["reason"] == "opt_out"
    listed = (await api.client.get("/api/v1/suppressions", headers=api.headers())).json()
    assert listed["suppressions"][0]["phone"] is None


async def test_shared_text_is_kept_for_the_other_recipient(api: Any, comp: Any) -> None:
    body = (await api.send(to=[PHONE, OTHER], message="Team meeting at 10")).json()
    await _erase(api)
    message = await comp.message(body["id"])
    assert message["content"] == "Team meeting at 10"
    assert message["to"] == [None, OTHER]
    await _erase(api, OTHER)
    assert (await comp.message(body["id"]))["content"] is None


async def test_a_waiting_message_to_an_erased_number_is_never_sent(
    api: Any, comp: Any, clock: Any
) -> None:
    when = clock() + timedelta(hours=1)
    body = (await api.send(to=PHONE, scheduledFor=when.isoformat())).json()
    await _erase(api)
    clock.advance(hours=2)
    await api.drain()
    recipient = (await comp.message(body["id"]))["recipients"][0]
    assert (recipient["status"], recipient["errorCode"]) == ("rejected", "erased")


async def test_erasure_is_per_account_through_the_api(api: Any, comp: Any) -> None:
    _, other_key = api.new_account("other")
    mine = (await api.send(to=PHONE)).json()
    theirs = (await api.send(key=other_key, to=PHONE)).json()
    await _erase(api)
    assert (await comp.message(mine["id"]))["to"] == [None]
    got = await api.client.get(f"/api/v1/messages/{theirs['id']}", headers=api.headers(other_key))
    assert got.json()["to"] == [PHONE]


async def test_export_and_erase_are_audited_without_the_number(api: Any, comp: Any) -> None:
    await _history(api, comp)
    await _export(api)
    await _erase(api)
    entries = comp.rows(audit_log, audit_log.c.action.in_(["privacy.exported", "privacy.erased"]))
    assert [e["action"] for e in entries] == ["privacy.exported", "privacy.erased"]
    assert entries[0]["details"]["messages"] == 2
    assert entries[1]["details"]["recipients"] == 2
    text = json.dumps(entries, default=str)
    assert PHONE not in text
    assert PHONE[1:] not in text
    assert api.runtime.vault.blind_index(api.account_id, PHONE) not in text


async def test_privacy_bad_input_is_a_400(api: Any) -> None:
    cases = [
        ("GET", "/api/v1/privacy/export", None, "invalid_request"),
        ("GET", "/api/v1/privacy/export?phone=0701521269", None, "invalid_phone_number"),
        ("POST", "/api/v1/privacy/erase", {}, "invalid_request"),
        ("POST", "/api/v1/privacy/erase", {"phone": 256701521269}, "invalid_request"),
        ("POST", "/api/v1/privacy/erase", {"phone": "call me"}, "invalid_phone_number"),
    ]
    for method, path, body, code in cases:
        response = await api.client.request(method, path, json=body, headers=api.headers())
        assert response.status_code == 400, (path, body, response.text)
        assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_files_keep_no_trace_of_the_erased_number(api: Any, comp: Any) -> None:
    """Not the plaintext, and not even the ciphertext of the erased values."""
    await _history(api, comp)
    await comp.inbound("STOP")
    await api.drain()
    index = api.runtime.vault.blind_index(api.account_id, PHONE)

    def blobs(conn: sa.Connection) -> list[bytes]:
        found: list[bytes] = []
        for table, columns in (
            (recipients, ("phone",)),
            (messages, ("content",)),
            (inbound_messages, ("phone", "body")),
            (consents, ("phone", "evidence")),
            (events, ("body",)),
            (idempotency_keys, ("response",)),
            (suppressions, ("phone",)),
        ):
            for row in conn.execute(sa.select(table)).mappings():
                found.extend(row[c] for c in columns if row[c] is not None)
        return found

    secret_blobs = api.runtime.db.read(blobs)
    assert len(secret_blobs) >= 10
    await _erase(api)

    db_file = Path(api.runtime.settings.sqlalchemy_url.removeprefix("sqlite:///"))
    files = [p for p in db_file.parent.glob(db_file.name + "*") if p.is_file()]
    raw = b"".join(p.read_bytes() for p in files)
    assert raw  # the database is there
    for needle in (PHONE.encode(), b"Order 5521", b"ticked box", PHONE.encode("utf-16-le")):
        assert needle not in raw
    leftovers = [blob for blob in secret_blobs if blob[5:30] in raw]
    assert leftovers == []
    # The keyed block stays, as documented.
    assert index.encode() in raw


def test_erasure_turns_on_zeroing_of_freed_space_in_sqlite(tmp_path: Path) -> None:
    """Some SQLite builds leave secure_delete off; erasure and purges turn it on."""
    from msgine.server.compliance._scrub import zero_freed_space

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA secure_delete=OFF")
        zero_freed_space(conn)
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    engine.dispose()
