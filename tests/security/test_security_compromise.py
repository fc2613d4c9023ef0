"""``msgine keys compromise`` and ``POST /keys/{id}/compromise``: the key stops working at once in
every process, a replacement with the same settings works, webhooks get ``key.revoked``, the
audit and security logs record it, and the report shows what the key did."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from security_helpers import json_lines

from msgine.server import incident
from msgine.server.api._usage import UsageRecorder
from msgine.server.events import event_body
from msgine.server.storage._tables import api_keys, events, key_usage, webhook_deliveries
from support import Gateway

SEND = {"to": "+256772938461", "message": "compromise drill"}


def _usage_total(gw: Gateway, key_id: str) -> int:
    db = sqlite3.connect(f"file:{Path(gw.env['MSGINE_DATA_DIR']) / 'msgine.db'}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT COALESCE(SUM(requests), 0) FROM key_usage WHERE key_id = ?", (key_id,)
        ).fetchone()
        return int(row[0])
    finally:
        db.close()


def _wait_for_usage(gw: Gateway, key_id: str, expected: int) -> None:
    deadline = time.monotonic() + 20
    while _usage_total(gw, key_id) < expected:
        assert time.monotonic() < deadline, "usage was never flushed"
        time.sleep(0.1)


def test_compromise_from_the_cli_against_a_running_gateway(
    security_gateway: Gateway, tmp_path: Path
) -> None:
    gw = security_gateway
    made = gw.cli(
        "keys", "create", "--json", "--name", "partner", "--scopes",
        "messages:send,messages:read", "--allow-ip", "127.0.0.1/32", "--rate-limit", "50/minute",
    )  # fmt: skip
    old = json.loads(made.stdout)
    headers = {"X-Api-Key": old["key"]}
    with httpx.Client(base_url=gw.base_url, timeout=10) as client:
        for _ in range(3):
            assert client.post("/messages/sms", json=SEND, headers=headers).status_code == 201
        for _ in range(2):
            assert client.get("/messages", headers=headers).status_code == 200
        _wait_for_usage(gw, old["id"], 5)

        result = gw.cli("keys", "compromise", old["id"], "--json", "--yes")
        out = json.loads(result.stdout)
        # Revoked at once in the serving process, which the command never talked to.
        assert client.get("/messages", headers=headers).status_code == 401
        new_headers = {"X-Api-Key": out["key"]}
        assert client.get("/messages", headers=new_headers).status_code == 200

    assert out["compromisedKeyId"] == old["id"]
    assert out["id"] != old["id"]
    assert out["key"].startswith("msgine_test_")
    for field in ("name", "mode", "scopes", "allowedIps", "rateLimit"):
        assert out[field] == old[field], field
    assert out["rotatedFrom"] == old["id"]
    report = out["report"]
    assert report["keyId"] == old["id"]
    assert report["totalRequests"] == 5
    assert report["requestsByAddress"] == [{"sourceIp": "127.0.0.1", "requests": 5}]
    assert sum(r["requests"] for r in report["requestsByHour"]) == 5
    assert all(r["hour"].endswith(":00:00Z") for r in report["requestsByHour"])
    assert report["messagesSent"] == 3
    assert report["firstUsedAt"] is not None
    assert report["lastUsedAt"] >= report["firstUsedAt"]
    assert report["lastMessageAt"] >= report["firstMessageAt"]
    assert out["key"] not in result.stderr
    assert old["key"] not in result.stdout + result.stderr

    alerts = [e for e in json_lines(tmp_path / "security.log") if e["event"] == "key_compromised"]
    assert len(alerts) == 1
    assert alerts[0]["key_id"] == old["id"]
    assert alerts[0]["replacement_key_id"] == out["id"]
    log_text = (tmp_path / "security.log").read_text()
    assert old["key"] not in log_text
    assert out["key"] not in log_text

    audit = json.loads(gw.cli("audit", "list", "--json").stdout)
    actions = [(e["action"], e["target"]) for e in audit[:2]]
    assert actions == [("key.compromise", old["id"]), ("key.revoke", old["id"])]
    assert audit[1]["details"] == {"reason": "compromised"}
    assert audit[0]["actor"].startswith("cli:")
    assert gw.cli("audit", "verify").stdout.startswith("ok: ")

    again = gw.cli("keys", "compromise", old["id"], check=False)
    assert again.returncode == 1
    assert "no longer works" in again.stderr


async def _endpoint(api: Any) -> str:
    hook = await api.client.post(
        "/api/v1/webhooks",
        json={"url": "https://127.0.0.1:9/hook", "events": ["key.revoked"]},
        headers=api.headers(),
    )
    assert hook.status_code == 201, hook.text
    return str(hook.json()["id"])


def _revocation_events(api: Any) -> list[tuple[dict[str, Any], list[Any]]]:
    def read(conn: sa.Connection) -> list[tuple[dict[str, Any], list[Any]]]:
        found = []
        for event_id in conn.execute(
            sa.select(events.c.id).where(events.c.type == "key.revoked").order_by(events.c.id)
        ).scalars():
            body = event_body(conn, api.runtime.vault, event_id)
            assert body is not None
            deliveries = conn.execute(
                sa.select(webhook_deliveries.c.endpoint_id, webhook_deliveries.c.status).where(
                    webhook_deliveries.c.event_id == event_id
                )
            ).all()
            found.append((json.loads(body), [tuple(d) for d in deliveries]))
        return found

    return api.runtime.db.read(read)


async def test_compromise_route_raises_key_revoked_to_webhooks(api: Any) -> None:
    endpoint_id = await _endpoint(api)
    created = await api.client.post("/api/v1/keys", json={"name": "app"}, headers=api.headers())
    old = created.json()
    assert (
        await api.client.get("/api/v1/messages", headers=api.headers(old["key"]))
    ).status_code == 200

    response = await api.client.post(f"/api/v1/keys/{old['id']}/compromise", headers=api.headers())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["compromisedKeyId"] == old["id"]
    assert body["report"]["totalRequests"] == 1  # this process's counts are flushed first
    assert (
        await api.client.get("/api/v1/messages", headers=api.headers(old["key"]))
    ).status_code == 401
    assert (
        await api.client.get("/api/v1/messages", headers=api.headers(body["key"]))
    ).status_code == 200

    await api.drain()  # flushes usage: last use is recorded
    listed = (await api.client.get("/api/v1/keys", headers=api.headers())).json()["keys"]
    assert next(k for k in listed if k["id"] == body["id"])["lastUsedAt"] is not None

    [(document, deliveries)] = _revocation_events(api)
    assert document["event"] == "key.revoked"
    assert document["data"] == {
        "keyId": old["id"],
        "mode": "test",
        "reason": "compromised",
        "replacedBy": body["id"],
    }
    assert "msgine_" not in json.dumps(document)
    assert deliveries == [(endpoint_id, "pending")]


async def test_the_usage_report_is_read_after_the_containment_commits(
    api: Any, monkeypatch: Any
) -> None:
    """Counting a key's messages reads the whole messages table: inside the containment's write
    transaction it held SQLite's write lock (and, on the API's event loop, the gateway) for as
    long as that took. The report runs on a read connection once the revocation is committed,
    and sees the messages the key sent."""
    created = await api.client.post("/api/v1/keys", json={"name": "app"}, headers=api.headers())
    old = created.json()
    sent = await api.client.post(
        "/api/v1/messages/sms",
        json={"to": "+256701521269", "message": "hi"},
        headers=api.headers(old["key"]),
    )
    assert sent.status_code == 201, sent.text
    seen: list[tuple[Any, Any]] = []
    report = incident.usage_report

    def observed(conn: sa.Connection, key: dict[str, Any]) -> dict[str, Any]:
        revoked = conn.execute(
            sa.select(api_keys.c.revoked_at).where(api_keys.c.id == key["id"])
        ).scalar()
        seen.append((conn.engine, revoked))
        return report(conn, key)

    monkeypatch.setattr(incident, "usage_report", observed)
    response = await api.client.post(f"/api/v1/keys/{old['id']}/compromise", headers=api.headers())
    assert response.status_code == 201, response.text
    [(engine, revoked_at)] = seen
    assert engine is api.runtime.db.read_engine
    assert revoked_at is not None  # committed before the report was read
    assert response.json()["report"]["messagesSent"] == 1


async def test_plain_revocation_also_raises_key_revoked(api: Any) -> None:
    endpoint_id = await _endpoint(api)
    created = await api.client.post("/api/v1/keys", json={}, headers=api.headers())
    key_id = created.json()["id"]
    revoked = await api.client.post(f"/api/v1/keys/{key_id}/revoke", headers=api.headers())
    assert revoked.json()["status"] == "revoked"
    again = await api.client.post(f"/api/v1/keys/{key_id}/revoke", headers=api.headers())
    assert again.status_code == 200
    [(document, deliveries)] = _revocation_events(api)  # once, not per call
    assert document["data"]["keyId"] == key_id
    assert document["data"]["reason"] == "revoked"
    assert deliveries == [(endpoint_id, "pending")]


async def test_a_test_key_cannot_compromise_a_live_key(api: Any) -> None:
    live = api.new_key(mode="live", name="prod")
    live_id = api.runtime.db.read(
        lambda c: c.execute(sa.select(api_keys.c.id).where(api_keys.c.name == "prod")).scalar()
    )
    denied = await api.client.post(f"/api/v1/keys/{live_id}/compromise", headers=api.headers())
    assert denied.status_code == 404  # a test key sees no live key at all
    assert (await api.client.get("/api/v1/messages", headers=api.headers(live))).status_code == 200


async def test_usage_counts_add_up_across_flushes_and_processes(runtime: Any) -> None:
    key_id = "key_usage_probe"
    first, second = UsageRecorder(runtime, 3600), UsageRecorder(runtime, 3600)
    now = runtime.now()
    for _ in range(3):
        first.note(key_id, "203.0.113.5", now)
    second.note(key_id, "203.0.113.5", now)
    second.note(key_id, None, now)
    assert await first.flush() == 1
    await second.close()
    first.note(key_id, "203.0.113.5", now)
    await first.close()

    rows = runtime.db.read(
        lambda c: c.execute(
            sa.select(key_usage.c.source_ip, key_usage.c.requests)
            .where(key_usage.c.key_id == key_id)
            .order_by(key_usage.c.source_ip)
        ).all()
    )
    assert [tuple(r) for r in rows] == [("203.0.113.5", 5), ("unknown", 1)]
