"""The audit trail: key changes are recorded with who, where and which request; ``msgine audit
verify`` finds an edited, deleted or reordered row on SQLite and PostgreSQL; ``GET /audit`` pages
through an account's entries; failed authentication is logged and bursts are audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from security_helpers import json_lines, run_cli, settings_env

from msgine._keyformat import generate_key
from msgine.server.api.routes.audit import FailureBursts
from msgine.server.logging import configure_logging
from msgine.server.storage._tables import audit_log


async def _key_changes(api: Any) -> dict[str, Any]:
    """Create, rotate and revoke a key through the API; returns the ids involved."""
    created = await api.client.post("/api/v1/keys", json={"name": "ci"}, headers=api.headers())
    assert created.status_code == 201, created.text
    key_id = created.json()["id"]
    rotated = await api.client.post(
        f"/api/v1/keys/{key_id}/rotate", json={"graceHours": 1}, headers=api.headers()
    )
    assert rotated.status_code == 201, rotated.text
    revoked = await api.client.post(
        f"/api/v1/keys/{rotated.json()['id']}/revoke",
        headers={**api.headers(), "X-Request-Id": "req-revoke-1"},
    )
    assert revoked.status_code == 200, revoked.text
    return {"created": key_id, "rotated": rotated.json()["id"]}


def _rows(api: Any) -> list[dict[str, Any]]:
    return api.runtime.db.read(
        lambda conn: [
            dict(r) for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).mappings()
        ]
    )


async def test_key_changes_are_audited_with_actor_address_and_request(api: Any) -> None:
    ids = await _key_changes(api)
    caller = next(r for r in _rows(api) if r["action"] == "key.create")["target"]
    rows = [r for r in _rows(api) if r["target"] in (ids["created"], ids["rotated"])]
    assert [(r["action"], r["target"]) for r in rows] == [
        ("key.create", ids["created"]),
        ("key.rotate", ids["created"]),
        ("key.revoke", ids["rotated"]),
    ]
    for row in rows:
        assert row["actor"] == caller  # the calling key, by id
        assert row["source_ip"] == "127.0.0.1"
        assert row["request_id"]
        assert row["outcome"] == "success"
        assert row["account_id"] == api.account_id
    assert rows[1]["details"]["newKeyId"] == ids["rotated"]
    assert rows[2]["request_id"] == "req-revoke-1"
    assert "msgine_" not in str(rows)


async def test_audit_route_pages_newest_first_within_the_account(api: Any) -> None:
    await _key_changes(api)
    first = await api.client.get("/api/v1/audit?limit=2", headers=api.headers())
    assert first.status_code == 200, first.text
    page = first.json()
    assert [e["action"] for e in page["entries"]] == ["key.revoke", "key.rotate"]
    assert {
        "seq",
        "id",
        "occurredAt",
        "actor",
        "action",
        "target",
        "sourceIp",
        "requestId",
        "outcome",
        "details",
        "hash",
    } <= set(page["entries"][0])
    rest = await api.client.get(
        f"/api/v1/audit?limit=50&before={page['nextBefore']}", headers=api.headers()
    )
    seqs = [e["seq"] for e in page["entries"] + rest.json()["entries"]]
    assert seqs == sorted(seqs, reverse=True)
    assert len(seqs) == len(set(seqs)) >= 4
    assert rest.json()["nextBefore"] is None

    _other, other_key = api.new_account("other")
    theirs = await api.client.get("/api/v1/audit", headers=api.headers(other_key))
    assert {e["target"] for e in theirs.json()["entries"]}.isdisjoint(seqs)
    assert all(e["action"] == "key.create" for e in theirs.json()["entries"])

    no_scope = api.new_key(scopes=["messages:send"])
    denied = await api.client.get("/api/v1/audit", headers=api.headers(no_scope))
    assert denied.status_code == 403
    assert (await api.client.get("/api/v1/audit")).status_code == 401


def _tamper(api: Any, how: str) -> tuple[int, str, str]:
    """Change the table as someone with database access would; returns the expected report."""
    rows = _rows(api)
    assert len(rows) >= 4
    statements = {
        "edit": ["UPDATE audit_log SET outcome = 'failure' WHERE seq = 2"],
        "edit_details": ["UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3"],
        "delete": ["DELETE FROM audit_log WHERE seq = 2"],
        "reorder": [
            "UPDATE audit_log SET seq = -3 WHERE seq = 3",
            "UPDATE audit_log SET seq = 3 WHERE seq = 2",
            "UPDATE audit_log SET seq = 2 WHERE seq = -3",
        ],
    }[how]

    def run(conn: sa.Connection) -> None:
        for statement in statements:
            conn.execute(sa.text(statement))

    api.runtime.db.write(run)
    return {
        "edit": (2, rows[1]["id"], "hash_mismatch"),
        "edit_details": (3, rows[2]["id"], "hash_mismatch"),
        "delete": (3, rows[2]["id"], "sequence_gap"),
        "reorder": (2, rows[2]["id"], "prev_hash_mismatch"),
    }[how]


async def test_audit_verify_passes_an_untouched_log(api: Any) -> None:
    await _key_changes(api)
    untouched = run_cli(settings_env(api.runtime.settings), "audit", "verify")
    assert untouched.returncode == 0, untouched.stderr
    assert untouched.stdout.strip() == f"ok: {len(_rows(api))} entries"


@pytest.mark.parametrize("how", ["edit", "edit_details", "delete", "reorder"])
async def test_audit_verify_names_the_first_bad_entry(api: Any, how: str, tmp_path: Path) -> None:
    await _key_changes(api)
    seq, entry_id, reason = _tamper(api, how)
    log_path = tmp_path / "security.log"
    env = settings_env(api.runtime.settings, MSGINE_SECURITY_LOG_PATH=str(log_path))
    broken = run_cli(env, "audit", "verify")
    assert broken.returncode == 1
    assert broken.stdout == ""
    assert broken.stderr.strip() == (
        f"error: audit log broken at seq {seq}, id {entry_id}: {reason}"
    )
    [alert] = [e for e in json_lines(log_path) if e["event"] == "audit_chain_broken"]
    assert (alert["seq"], alert["entry_id"], alert["reason"]) == (seq, entry_id, reason)


def test_cli_key_commands_are_audited_as_the_cli_user(runtime: Any) -> None:
    env = settings_env(runtime.settings)
    created = run_cli(env, "accounts", "create", "ops", "--json")
    assert created.returncode == 0, created.stderr
    made = run_cli(env, "keys", "create", "--account", "ops", "--json")
    assert made.returncode == 0, made.stderr
    listed = run_cli(env, "audit", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    import json

    entries = json.loads(listed.stdout)
    assert entries[0]["action"] == "key.create"
    assert entries[0]["actor"].startswith("cli:")
    assert entries[0]["target"] == json.loads(made.stdout)["id"]


async def test_failed_authentication_is_logged_and_bursts_are_audited(
    api: Any, tmp_path: Path, clean_logging: None
) -> None:
    log_path = tmp_path / "security.log"
    configure_logging(level="WARNING", security_log_path=str(log_path))
    wrong = generate_key("live")
    for _ in range(9):
        response = await api.client.get("/api/v1/messages", headers={"X-Api-Key": wrong})
        assert response.status_code == 401
    assert not [r for r in _rows(api) if r["action"] == "auth.failure_burst"]
    tenth = await api.client.get("/api/v1/messages", headers={"X-Api-Key": wrong})
    assert tenth.status_code == 401
    bursts = [r for r in _rows(api) if r["action"] == "auth.failure_burst"]
    assert len(bursts) == 1
    assert bursts[0]["source_ip"] == "127.0.0.1"
    assert bursts[0]["target"] == "127.0.0.1"
    assert bursts[0]["outcome"] == "failure"
    assert bursts[0]["details"] == {"failures": 10, "windowSeconds": 300}

    # From another address (this one may now be locked out by the rate limiter).
    no_scope = api.new_key(scopes=["messages:read"])
    transport = httpx.ASGITransport(app=api.app, client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        forbidden = await other.post("/api/v1/keys", json={}, headers={"X-Api-Key": no_scope})
    assert forbidden.status_code == 403

    events = json_lines(log_path)
    failed = [e for e in events if e["event"] == "auth_failed"]
    assert len(failed) == 10
    assert failed[0]["key_prefix"] == "msgine_live_"
    assert failed[0]["source_ip"] == "127.0.0.1"
    assert failed[0]["route"] == "/messages"  # the route template: no ids or numbers
    assert [e["event"] for e in events].count("auth_failure_burst") == 1
    denied = [e for e in events if e["event"] == "forbidden"]
    assert len(denied) == 1
    assert denied[0]["required_scope"] == "keys:manage"
    assert denied[0]["source_ip"] == "192.0.2.7"
    text = log_path.read_text()
    assert wrong not in text
    assert wrong[-4:] not in text
    assert no_scope not in text


def test_a_burst_is_reported_once_per_window() -> None:
    bursts = FailureBursts(threshold=10, window=timedelta(minutes=5))
    start = datetime(2030, 1, 1, tzinfo=UTC)
    reports = [bursts.failed("198.51.100.1", start + timedelta(seconds=i)) for i in range(40)]
    assert reports.count(True) == 1
    assert reports.index(True) == 9
    later = start + timedelta(minutes=6)
    again = [bursts.failed("198.51.100.1", later + timedelta(seconds=i)) for i in range(10)]
    assert again == [False] * 9 + [True]
    # Spread out: never ten within five minutes.
    slow = [bursts.failed("198.51.100.2", start + timedelta(minutes=i)) for i in range(30)]
    assert True not in slow
