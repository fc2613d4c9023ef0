"""What an operator finds after an incident: refusals logged by key id, at the right level, and
refused attempts with a compromised key counted in its report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from msgine._keyformat import generate_key
from msgine.server.keys import create_key, revoke_key
from msgine.server.logging import configure_logging, reset_logging


@pytest.fixture
def security_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "security.log"
    configure_logging(level="WARNING", security_log_path=str(path))
    yield path
    reset_logging()


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def new_key(api: Any, **kwargs: Any) -> Any:
    runtime = api.runtime
    now = runtime.now()
    return runtime.db.write(
        lambda conn: create_key(conn, runtime.vault, account_id=api.account_id, now=now, **kwargs)
    )


async def test_a_revoked_key_is_logged_as_revoked_at_warning(api: Any, security_log: Path) -> None:
    runtime = api.runtime
    key = new_key(api)
    runtime.db.write(
        lambda conn: revoke_key(conn, key.record["id"], now=runtime.now(), vault=runtime.vault)
    )
    unknown = generate_key("test")
    for presented in (key.secret, unknown):
        response = await api.client.get("/api/v1/messages", headers={"X-Api-Key": presented})
        assert response.status_code == 401
        # The caller cannot tell them apart.
        assert response.json()["error"]["message"] == "Invalid API key."
    logged = events(security_log)
    revoked = [e for e in logged if e["event"] == "revoked_key_used"]
    assert len(revoked) == 1
    assert revoked[0]["level"] == "warning"
    assert revoked[0]["key_id"] == key.record["id"]
    assert revoked[0]["reason"] == "revoked"
    failed = [e for e in logged if e["event"] == "auth_failed"]
    assert [(e["reason"], e["level"]) for e in failed] == [("unknown", "info")]
    for event in logged:
        assert key.secret not in json.dumps(event) and unknown not in json.dumps(event)


async def test_an_address_refusal_names_the_key(api: Any, security_log: Path) -> None:
    key = new_key(api, allowed_ips=["10.0.0.0/8"])
    response = await api.client.get("/api/v1/messages", headers={"X-Api-Key": key.secret})
    assert response.status_code == 403
    forbidden = [e for e in events(security_log) if e["event"] == "forbidden"]
    assert len(forbidden) == 1
    assert forbidden[0]["key_id"] == key.record["id"]
    assert forbidden[0]["reason"] == "ip_not_allowed"
    assert forbidden[0]["level"] == "warning"
    assert forbidden[0]["source_ip"] == "127.0.0.1"


async def test_the_report_counts_refused_attempts_after_containment(api: Any) -> None:
    leaked = new_key(api)
    ok = await api.client.get("/api/v1/messages", headers={"X-Api-Key": leaked.secret})
    assert ok.status_code == 200
    contained = await api.client.post(
        f"/api/v1/keys/{leaked.record['id']}/compromise", headers=api.headers()
    )
    assert contained.status_code == 201, contained.text
    assert contained.json()["report"]["refusedAfterRevocation"] == 0

    attacker = httpx.ASGITransport(app=api.app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=attacker, base_url="http://testserver") as client:
        for _ in range(3):
            again = await client.get("/api/v1/messages", headers={"X-Api-Key": leaked.secret})
            assert again.status_code == 401

    report = await api.client.get(
        f"/api/v1/keys/{leaked.record['id']}/usage", headers=api.headers()
    )
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["refusedAfterRevocation"] == 3
    assert body["refusedByAddress"] == [{"sourceIp": "203.0.113.9", "requests": 3}]
    # Accepted requests stay apart from the refused ones.
    assert body["totalRequests"] == 1
    assert [row["sourceIp"] for row in body["requestsByAddress"]] == ["127.0.0.1"]


@pytest.mark.slow
def test_keys_usage_command_shows_refused_attempts(tmp_path: Path) -> None:
    """The operator's view: compromise from the CLI, the attacker keeps trying, `keys usage`."""
    import time

    from support import gateway_env, start_gateway

    gw = start_gateway(gateway_env(tmp_path, MSGINE_USAGE_FLUSH_SECONDS="0.2"), cwd=tmp_path)
    try:
        made = json.loads(gw.cli("keys", "create", "--json").stdout)
        gw.cli("keys", "compromise", made["id"], "--json", "--yes")
        for _ in range(2):
            refused = httpx.get(f"{gw.base_url}/messages", headers={"X-Api-Key": made["key"]})
            assert refused.status_code == 401
        deadline = time.monotonic() + 20
        report: dict[str, Any] = {}
        while time.monotonic() < deadline:
            report = json.loads(gw.cli("keys", "usage", made["id"], "--json").stdout)
            if report["refusedAfterRevocation"] == 2:
                break
            time.sleep(0.3)
        assert report["refusedAfterRevocation"] == 2, report
        assert report["refusedByAddress"] == [{"sourceIp": "127.0.0.1", "requests": 2}]
        text = gw.cli("keys", "usage", made["id"]).stdout
        assert "refused after revocation: 2" in text
        assert made["key"] not in text
    finally:
        gw.stop()
