"""API1:2023 Broken object level authorization: test and live are two worlds in one account.

Every object has a mode, and a key sees and changes only objects of its own mode, on every
route family: keys, messages, idempotency keys, webhook endpoints and their deliveries and
events, consents, suppressions, privacy requests and the audit log. Each test runs both ways
(a test key against live objects, and a live key against test objects) on both databases.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from msgine.server.storage._tables import api_keys, events, webhook_deliveries

PHONE = "+256701521269"
OTHER = {"test": "live", "live": "test"}


@pytest.fixture(params=["test", "live"])
def owner(request: pytest.FixtureRequest) -> str:
    """The mode that owns the objects; the intruder is a key of the other mode."""
    return str(request.param)


def keys_of(api: Any) -> dict[str, str]:
    """A key with every scope in each mode."""
    return {"test": api.key, "live": api.new_key(mode="live", name="live-all")}


def _key_id(api: Any, name: str) -> str:
    return str(
        api.runtime.db.read(
            lambda c: c.execute(sa.select(api_keys.c.id).where(api_keys.c.name == name)).scalar()
        )
    )


async def _call(api: Any, key: str, method: str, path: str, **kwargs: Any) -> Any:
    return await api.client.request(method, f"/api/v1{path}", headers=api.headers(key), **kwargs)


async def test_keys(api: Any, owner: str) -> None:
    keys = keys_of(api)
    intruder = keys[OTHER[owner]]
    api.new_key(mode=owner, name="target", scopes=["messages:read"])
    target = _key_id(api, "target")
    listed = (await _call(api, intruder, "GET", "/keys")).json()["keys"]
    assert target not in {k["id"] for k in listed}
    assert {k["mode"] for k in listed} == {OTHER[owner]}
    for action in ("revoke", "rotate", "compromise"):
        response = await _call(api, intruder, "POST", f"/keys/{target}/{action}", json={})
        assert response.status_code == 404, (action, response.text)
    still = (await _call(api, keys[owner], "GET", "/keys")).json()["keys"]
    assert next(k for k in still if k["id"] == target)["status"] == "active"


async def test_messages(api: Any, owner: str) -> None:
    keys = keys_of(api)
    intruder = keys[OTHER[owner]]
    sent = await api.send(keys[owner], to=PHONE)
    message_id = sent.json()["id"]
    for path in (f"/messages/{message_id}", f"/developers/{message_id}"):
        assert (await _call(api, intruder, "GET", path)).status_code == 404
        assert (await _call(api, keys[owner], "GET", path)).status_code == 200
    for path in ("/messages", "/developers/sms/history"):
        page = (await _call(api, intruder, "GET", path)).json()
        assert page["total"] == 0 and page["messages"] == []


async def test_idempotency_keys(api: Any, owner: str) -> None:
    keys = keys_of(api)
    body = {"to": PHONE, "message": "Your code is 1234"}
    first = await api.client.post(
        "/api/v1/messages/sms",
        json=body,
        headers={**api.headers(keys[owner]), "Idempotency-Key": "order-42"},
    )
    assert first.status_code == 201
    replay = await api.client.post(
        "/api/v1/messages/sms",
        json=body,
        headers={**api.headers(keys[OTHER[owner]]), "Idempotency-Key": "order-42"},
    )
    assert replay.status_code == 201, replay.text
    assert "idempotent-replayed" not in replay.headers
    assert replay.json()["id"] != first.json()["id"]
    other_body = await api.client.post(  # the other world's key is not "used with another body"
        "/api/v1/messages/sms",
        json={**body, "idempotencyKey": "order-43"},
        headers=api.headers(keys[owner]),
    )
    assert other_body.status_code == 201
    conflict = await api.client.post(
        "/api/v1/messages/sms",
        json={**body, "message": "another body", "idempotencyKey": "order-43"},
        headers=api.headers(keys[OTHER[owner]]),
    )
    assert conflict.status_code == 201
    again = await api.client.post(
        "/api/v1/messages/sms",
        json=body,
        headers={**api.headers(keys[owner]), "Idempotency-Key": "order-42"},
    )
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


async def test_webhook_endpoints_and_deliveries(api: Any, owner: str) -> None:
    keys = keys_of(api)
    intruder = keys[OTHER[owner]]
    created = await _call(
        api, keys[owner], "POST", "/webhooks", json={"url": "https://127.0.0.1:9/hooks"}
    )
    endpoint = created.json()["id"]
    await api.send(keys[owner], to=PHONE)
    await api.drain()
    deliveries = (await _call(api, keys[owner], "GET", f"/webhooks/{endpoint}/deliveries")).json()
    delivery = deliveries["deliveries"][0]["id"]
    listed = (await _call(api, intruder, "GET", "/webhooks")).json()["webhooks"]
    assert endpoint not in {w["id"] for w in listed}
    attempts = [
        ("GET", f"/webhooks/{endpoint}", None),
        ("PATCH", f"/webhooks/{endpoint}", {"enabled": False}),
        ("POST", f"/webhooks/{endpoint}/rotate-secret", {}),
        ("GET", f"/webhooks/{endpoint}/deliveries", None),
        ("POST", f"/webhooks/{endpoint}/deliveries/{delivery}/replay", None),
        ("DELETE", f"/webhooks/{endpoint}", None),
    ]
    for method, path, body in attempts:
        response = await _call(api, intruder, method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
    mine = (await _call(api, keys[owner], "GET", f"/webhooks/{endpoint}")).json()
    assert mine["enabled"] is True


def _event_types_delivered_to(api: Any, endpoint_id: str) -> list[str]:
    return list(
        api.runtime.db.read(
            lambda c: c.execute(
                sa.select(events.c.type)
                .join(webhook_deliveries, webhook_deliveries.c.event_id == events.c.id)
                .where(webhook_deliveries.c.endpoint_id == endpoint_id)
            ).scalars()
        )
    )


async def test_webhook_endpoints_receive_only_their_modes_events(api: Any, owner: str) -> None:
    keys = keys_of(api)
    created = await _call(
        api, keys[owner], "POST", "/webhooks", json={"url": "https://127.0.0.1:9/hooks"}
    )
    endpoint = created.json()["id"]
    await api.send(keys[OTHER[owner]], to=PHONE)
    api.new_key(mode=OTHER[owner], name="doomed")
    await _call(api, keys[OTHER[owner]], "POST", f"/keys/{_key_id(api, 'doomed')}/revoke")
    await api.worker.run_once()
    assert _event_types_delivered_to(api, endpoint) == []
    await api.send(keys[owner], to=PHONE)
    await api.worker.run_once()
    assert "message.sent" in _event_types_delivered_to(api, endpoint)


async def test_consents(api: Any, owner: str) -> None:
    keys = keys_of(api)
    intruder = keys[OTHER[owner]]
    put = await _call(
        api,
        keys[owner],
        "PUT",
        f"/consents/{PHONE}",
        json={"purpose": "marketing", "source": "web form"},
    )
    assert put.json()["active"]["marketing"] is True
    seen = (await _call(api, intruder, "GET", f"/consents/{PHONE}")).json()
    assert seen["active"]["marketing"] is False and seen["consents"] == []
    withdrawn = await _call(api, intruder, "DELETE", f"/consents/{PHONE}")
    assert withdrawn.status_code == 404
    marketing = await api.send(intruder, to=PHONE, type="marketing", message="Sale today")
    assert marketing.json()["recipients"][0]["errorCode"] == "consent_required"
    still = (await _call(api, keys[owner], "GET", f"/consents/{PHONE}")).json()
    assert still["active"]["marketing"] is True


async def test_suppressions(api: Any, owner: str) -> None:
    from msgine.server.compliance import _suppressions

    keys = keys_of(api)
    intruder = keys[OTHER[owner]]
    vault, now = api.runtime.vault, api.runtime.now()
    api.runtime.db.write(
        lambda conn: _suppressions.suppress(
            conn,
            vault,
            account_id=api.account_id,
            mode=owner,
            phone=PHONE,
            phone_index=vault.blind_index(api.account_id, PHONE),
            reason=_suppressions.OPT_OUT,
            source="keyword",
            now=now,
        )
    )
    assert (await _call(api, intruder, "GET", "/suppressions")).json()["total"] == 0
    assert (await _call(api, intruder, "DELETE", f"/suppressions/{PHONE}")).status_code == 404
    assert (await _call(api, keys[owner], "GET", "/suppressions")).json()["total"] == 1
    blocked = await api.send(keys[owner], to=PHONE)
    assert blocked.json()["recipients"][0]["errorCode"] == "recipient_opted_out"


async def test_privacy_requests(api: Any, owner: str) -> None:
    keys = keys_of(api)
    intruder = keys[OTHER[owner]]
    await api.send(keys[owner], to=PHONE, message="Owner's text")
    exported = await _call(api, intruder, "GET", "/privacy/export", params={"phone": PHONE})
    assert exported.status_code == 200
    assert exported.json()["messages"] == [] and "Owner's text" not in exported.text
    erased = await _call(api, intruder, "POST", "/privacy/erase", json={"phone": PHONE})
    assert erased.json()["recipients"] == 0
    mine = await _call(api, keys[owner], "GET", "/privacy/export", params={"phone": PHONE})
    assert [m["content"] for m in mine.json()["messages"]] == ["Owner's text"]


async def test_audit_log(api: Any, owner: str) -> None:
    keys = keys_of(api)
    created = await _call(api, keys[owner], "POST", "/keys", json={"name": "audited"})
    assert created.status_code == 201
    created_id = created.json()["id"]
    entries = (await _call(api, keys[OTHER[owner]], "GET", "/audit")).json()["entries"]
    assert created_id not in {e["target"] for e in entries}
    own = (await _call(api, keys[owner], "GET", "/audit")).json()["entries"]
    assert created_id in {e["target"] for e in own}


async def test_callback_signing_secrets(api: Any, owner: str) -> None:
    """Each mode has its own secret for per-message callbackUrl deliveries: rotating one never
    changes (nor shows) the other's."""
    from msgine.server.webhooks._endpoints import account_secrets

    keys = keys_of(api)
    mine = await _call(api, keys[owner], "POST", "/account/webhook-secret")
    theirs = await _call(api, keys[OTHER[owner]], "POST", "/account/webhook-secret", json={})
    assert mine.json()["secret"] != theirs.json()["secret"]
    assert theirs.json()["previousSecretExpiresAt"] is None  # it replaced nothing of mine
    now = api.runtime.now()
    signing = api.runtime.db.read(
        lambda c: account_secrets(c, api.runtime.vault, api.account_id, now, owner)
    )
    assert signing == [mine.json()["secret"]]


# The rows are written as the old schema had them, without the mode SQLAlchemy now expects.
@pytest.mark.filterwarnings("ignore:Column .* is marked as a member of the primary key")
@pytest.mark.empty_database
def test_existing_objects_keep_the_world_they_were_made_in(settings: Any) -> None:
    """Migration 0003 gives rows made before modes existed the mode of what made them."""
    from datetime import UTC, datetime

    from msgine.server.storage import Database
    from msgine.server.storage import _tables as t

    now = datetime.now(UTC)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.sqlalchemy_url)

    def key(key_id: str, mode: str) -> dict[str, Any]:
        return {
            "id": key_id, "account_id": "acc_1", "name": key_id, "mode": mode,
            "key_hash": key_id * 4, "prefix": f"msgine_{mode}_", "last4": "abcd",
            "scopes": [], "allowed_ips": [], "created_at": now, "created_by": "cli",
        }  # fmt: skip

    def message(message_id: str, mode: str) -> dict[str, Any]:
        return {
            "id": message_id, "account_id": "acc_1", "mode": mode, "type": "transactional",
            "encoding": "GSM-7", "segments": 1, "cost": 0, "currency": "UGX",
            "status": "sent", "created_at": now, "updated_at": now,
        }  # fmt: skip

    def created(seq: int, actor: str, action: str, target: str) -> dict[str, Any]:
        return {
            "seq": seq, "id": f"aud_{seq}", "occurred_at": now, "account_id": "acc_1",
            "actor": actor, "action": action, "target": target, "outcome": "success",
            "details": {}, "prev_hash": "0" * 64, "hash": "1" * 64,
        }  # fmt: skip

    def old_rows(conn: sa.Connection) -> None:
        conn.execute(
            sa.insert(t.accounts).values(id="acc_1", name="a", settings={}, created_at=now)
        )
        conn.execute(sa.insert(t.api_keys), [key("key_t", "test"), key("key_l", "live")])
        conn.execute(sa.insert(t.messages), [message("msg_t", "test"), message("msg_l", "live")])
        conn.execute(
            sa.insert(t.idempotency_keys),
            [
                {"account_id": "acc_1", "key": k, "request_hash": "h", "message_id": m,
                 "response": b"x", "created_at": now, "expires_at": now}
                for k, m in (("k1", "msg_t"), ("k2", "msg_l"))
            ],
        )  # fmt: skip
        conn.execute(
            sa.insert(t.events),
            [
                {"id": e, "account_id": "acc_1", "type": "message.sent", "message_id": m,
                 "created_at": now}
                for e, m in (("evt_t", "msg_t"), ("evt_l", "msg_l"), ("evt_k", None))
            ],
        )  # fmt: skip
        conn.execute(
            sa.insert(t.webhook_endpoints),
            [
                {"id": w, "account_id": "acc_1", "url": "https://example.com/", "events": [],
                 "enabled": True, "secret": b"s", "created_at": now, "updated_at": now}
                for w in ("we_t", "we_l", "we_cli")
            ],
        )  # fmt: skip
        consents_0002 = sa.table(  # the source column is text at 0002 (sealed from 0004)
            "consents", *(sa.column(name) for name in
                          ("id", "account_id", "phone_index", "purpose", "source", "granted_at"))
        )  # fmt: skip
        conn.execute(
            sa.insert(consents_0002),
            [
                {"id": c, "account_id": "acc_1", "phone_index": c, "purpose": "marketing",
                 "source": "form", "granted_at": now}
                for c in ("cns_t", "cns_l")
            ],
        )  # fmt: skip
        conn.execute(
            sa.insert(t.audit_log),
            [
                created(1, "key_t", "webhook.endpoint_created", "we_t"),
                created(2, "key_l", "webhook.endpoint_created", "we_l"),
                created(3, "cli:root", "webhook.endpoint_created", "we_cli"),
                created(4, "key_t", "consent.granted", "cns_t"),
                created(5, "key_l", "consent.granted", "cns_l"),
            ],
        )
        conn.execute(
            sa.insert(t.suppressions),
            [
                {"account_id": "acc_1", "phone_index": i, "reason": "opt_out", "source": s,
                 "created_at": now}
                for i, s in (("p_kw", "keyword"), ("p_other", "import"))
            ],
        )  # fmt: skip
        conn.execute(
            sa.insert(t.inbound_messages).values(
                id="in_1", account_id="acc_1", phone_index="p", received_at=now
            )
        )

    def modes(table: sa.Table, column: str) -> dict[str, str]:
        rows = db.read(lambda c: c.execute(sa.select(table.c[column], table.c.mode)).all())
        return {str(name): str(mode) for name, mode in rows}

    try:
        db.migrate("0002")
        db.write(old_rows)
        db.migrate("0003")  # the migration that gives rows their mode; 0004 has its own tests
        assert modes(t.idempotency_keys, "key") == {"k1": "test", "k2": "live"}
        assert modes(t.events, "id") == {"evt_t": "test", "evt_l": "live", "evt_k": "live"}
        assert modes(t.webhook_endpoints, "id") == {
            "we_t": "test",
            "we_l": "live",
            "we_cli": "live",
        }
        assert modes(t.consents, "id") == {"cns_t": "test", "cns_l": "live"}
        assert modes(t.suppressions, "phone_index") == {"p_kw": "test", "p_other": "live"}
        assert modes(t.inbound_messages, "id") == {"in_1": "test"}
    finally:
        db.close()
