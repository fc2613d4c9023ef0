"""API2:2023 Broken authentication: credentials the gateway must not guess at, and webhook
signatures a receiver can rely on.

- A request names one API key in one header; conflicting credentials are a 400, never resolved
  by picking one (a proxy and the gateway could pick differently).
- The same for the headers that decide who the caller is or what a retry is: every
  X-Forwarded-For line counts, and one idempotency key per send.
- The SDK accepts a delivery signed only by ``x-msgine-signature`` (no signed timestamp) only
  when asked to, and then only once per event id and while the event is recent.
- ``x-msgine-signature`` is exactly one hex value, during a secret rotation too.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from security_helpers import run_cli

from msgine._keyformat import generate_key
from msgine.server.scan import format_finding, printable, scan_paths
from msgine.webhooks import (
    MemoryDedupeStore,
    WebhookReceiver,
    WebhookVerificationError,
    WebhookVerifier,
    encode_body,
    generate_secret,
    sign_hex,
    signature_headers,
    verify,
)
from support import git, make_settings, serve_in_process

# --- one credential per request -------------------------------------------------------------------


async def _get(api: Any, headers: list[tuple[str, str]]) -> httpx.Response:
    return await api.client.get("/api/v1/messages", headers=headers)


async def test_one_key_in_either_header_or_both_agreeing_is_accepted(api: Any) -> None:
    for headers in (
        [("X-Api-Key", api.key)],
        [("Authorization", f"Bearer {api.key}")],
        [("X-Api-Key", api.key), ("Authorization", f"Bearer {api.key}")],
        [("X-Api-Key", api.key), ("Authorization", api.key)],
    ):
        assert (await _get(api, headers)).status_code == 200, headers


async def test_conflicting_credentials_are_a_400(api: Any) -> None:
    other = api.new_key(name="other")
    cases = [
        [("X-Api-Key", api.key), ("Authorization", f"Bearer {other}")],
        [("X-Api-Key", api.key), ("Authorization", "Bearer msgine_test_forged")],
        [("X-Api-Key", api.key), ("X-Api-Key", other)],
        [("X-Api-Key", api.key), ("X-Api-Key", api.key)],
        [("Authorization", f"Bearer {api.key}"), ("Authorization", f"Bearer {other}")],
        [("Authorization", f"Bearer {api.key}"), ("Authorization", "Basic dXNlcjpwYXNz")],
    ]
    for headers in cases:
        response = await _get(api, headers)
        assert response.status_code == 400, (headers, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["details"] == {"reason": "conflicting_credentials"}
        assert api.key not in response.text and other not in response.text


async def test_conflicting_credentials_on_the_send_path_too(api: Any) -> None:
    other = api.new_key(name="other")
    response = await api.client.post(
        "/api/v1/messages/sms",
        json={"to": "+256701521269", "message": "hi"},
        headers=[("X-Api-Key", other), ("Authorization", f"Bearer {api.key}")],
    )
    assert response.status_code == 400
    listed = await api.client.get("/api/v1/messages", headers=api.headers())
    assert listed.json()["total"] == 0


async def test_two_idempotency_keys_are_refused(api: Any) -> None:
    body = {"to": "+256701521269", "message": "hi"}
    both = [("Idempotency-Key", "a1"), ("Idempotency-Key", "b2")]
    response = await api.client.post(
        "/api/v1/messages/sms", json=body, headers=[*api.headers().items(), *both]
    )
    assert response.status_code == 400, response.text
    mixed = await api.client.post(
        "/api/v1/messages/sms",
        json={**body, "idempotencyKey": "b2"},
        headers={**api.headers(), "Idempotency-Key": "a1"},
    )
    assert mixed.status_code == 400, mixed.text
    agreeing = await api.client.post(
        "/api/v1/messages/sms",
        json={**body, "idempotencyKey": "a1"},
        headers={**api.headers(), "Idempotency-Key": "a1"},
    )
    assert agreeing.status_code == 201, agreeing.text


@pytest.fixture
async def behind_proxy(tmp_path: Path, database_url: str | None, clock: Any) -> AsyncIterator[Any]:
    """An app whose peer (the test client, 127.0.0.1) is a trusted proxy."""
    from msgine.server.keys import create_key
    from msgine.server.runtime import Runtime

    settings = make_settings(tmp_path, database_url, trusted_proxies="127.0.0.0/8")
    runtime = Runtime.open(settings, clock=clock)
    try:
        async with serve_in_process(runtime) as (_app, client, first):
            now = runtime.now()
            allowed = runtime.db.write(
                lambda conn: create_key(
                    conn,
                    runtime.vault,
                    account_id=first.record["account_id"],
                    now=now,
                    allowed_ips=["198.51.100.7/32"],
                )
            )
            yield client, allowed.secret
    finally:
        runtime.close()


async def test_every_forwarded_for_line_counts(behind_proxy: Any) -> None:
    """A client's own X-Forwarded-For line cannot stand in for the one its proxy added."""
    client, key = behind_proxy
    url, auth = "/api/v1/messages", ("X-Api-Key", key)
    allowed = await client.get(url, headers=[auth, ("X-Forwarded-For", "198.51.100.7")])
    assert allowed.status_code == 200, allowed.text
    forged_first = [auth, ("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-For", "203.0.113.9")]
    response = await client.get(url, headers=forged_first)
    assert response.status_code == 403, response.text


# --- the SDK's legacy verification ----------------------------------------------------------------

NOW = int(time.time())


def _legacy_delivery(secret: str, *, age: int = 0, event_id: str = "evt_l") -> tuple[bytes, dict]:
    stamp = datetime.fromtimestamp(NOW - age, UTC).isoformat().replace("+00:00", "Z")
    body = encode_body({"id": event_id, "event": "message.sent", "timestamp": stamp})
    return body, {"x-msgine-signature": sign_hex(secret, body)}


def _reason(*args: Any, **kwargs: Any) -> str:
    with pytest.raises(WebhookVerificationError) as caught:
        verify(*args, **kwargs)
    return caught.value.reason


def test_legacy_signatures_are_refused_by_default() -> None:
    secret = generate_secret()
    body, headers = _legacy_delivery(secret)
    assert _reason(body, headers, secret, now=NOW) == "missing_header"
    with pytest.raises(WebhookVerificationError):
        WebhookVerifier(secret).verify(body, headers, now=NOW)


def test_legacy_needs_a_dedupe_store() -> None:
    secret = generate_secret()
    body, headers = _legacy_delivery(secret)
    assert _reason(body, headers, secret, now=NOW, allow_legacy=True) == "bad_configuration"
    with pytest.raises(WebhookVerificationError) as caught:
        WebhookVerifier(secret, allow_legacy=True)
    assert caught.value.reason == "bad_configuration"
    with pytest.raises(WebhookVerificationError):
        WebhookReceiver(secret, allow_legacy=True)


def test_a_captured_legacy_delivery_cannot_be_replayed() -> None:
    secret = generate_secret()
    store = MemoryDedupeStore()
    body, headers = _legacy_delivery(secret)
    options: dict[str, Any] = {"now": NOW, "allow_legacy": True, "dedupe": store}
    assert verify(body, headers, secret, **options)["id"] == "evt_l"
    assert _reason(body, headers, secret, **options) == "replayed"
    # Once the store has forgotten the id, the signed body's own age refuses it.
    old_body, old_headers = _legacy_delivery(secret, age=4 * 86400, event_id="evt_old")
    assert _reason(old_body, old_headers, secret, **options) == "timestamp_too_old"
    undated = encode_body({"id": "evt_u", "event": "message.sent"})
    undated_headers = {"x-msgine-signature": sign_hex(secret, undated)}
    assert _reason(undated, undated_headers, secret, **options) == "bad_timestamp"


def test_a_failing_dedupe_store_refuses_rather_than_risk_a_replay() -> None:
    class Down:
        def claim(self, event_id: str) -> bool:
            raise ConnectionError("redis is down")

        def complete(self, event_id: str) -> None: ...

        def release(self, event_id: str) -> None: ...

    secret = generate_secret()
    body, headers = _legacy_delivery(secret)
    options: dict[str, Any] = {"now": NOW, "allow_legacy": True, "dedupe": Down()}
    assert _reason(body, headers, secret, **options) == "dedupe_unavailable"


def test_a_receiver_in_legacy_mode_answers_a_replay_as_a_duplicate() -> None:
    secret = generate_secret()
    receiver = WebhookReceiver(secret, allow_legacy=True, dedupe=MemoryDedupeStore())
    body, headers = _legacy_delivery(secret, event_id=f"evt_{time.time_ns()}")
    first = receiver.check(body, headers, "203.0.113.10")
    assert first.event is not None
    receiver.succeeded(first)
    again = receiver.check(body, headers, "203.0.113.10")
    assert again.event is None and again.duplicate


def test_standard_webhooks_deliveries_still_verify_without_a_store() -> None:
    secret = generate_secret()
    body = encode_body({"id": "evt_s", "event": "message.sent"})
    headers = signature_headers([secret], "evt_s", NOW, body)
    assert verify(body, headers, secret, now=NOW)["id"] == "evt_s"


# --- x-msgine-signature during a rotation ---------------------------------------------------------


def test_the_hex_signature_is_one_value_signed_with_the_old_secret_during_grace() -> None:
    old, new = generate_secret(), generate_secret()
    body = encode_body({"id": "evt_g", "event": "message.sent"})
    headers = signature_headers([new, old], "evt_g", NOW, body)
    assert re.fullmatch(r"[0-9a-f]{64}", headers["x-msgine-signature"])
    assert headers["x-msgine-signature"] == sign_hex(old, body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    after = signature_headers([new], "evt_g", NOW, body)
    assert after["x-msgine-signature"] == sign_hex(new, body)


# --- the leak scanner finds keys where they hide --------------------------------------------------


def _commit(repo: Path, name: str, content: bytes | str, message: str = "change") -> str:
    target = repo / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content if isinstance(content, bytes) else content.encode())
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def _remove(repo: Path, name: str) -> None:
    (repo / name).unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"remove {name}")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    return path


def test_a_file_marked_minus_diff_and_later_deleted_is_scanned(repo: Path) -> None:
    key = generate_key("live")
    _commit(repo, ".gitattributes", "*.cfg -diff\n")
    added = _commit(repo, "deploy/secrets.cfg", f"[api]\nkey = {key}\n")
    _remove(repo, "deploy/secrets.cfg")
    found = [(f.path, f.line, f.commit) for f in scan_paths([repo]) if f.key == key]
    assert found == [(str(repo / "deploy" / "secrets.cfg"), 2, added)]


def test_commit_and_annotated_tag_messages_are_scanned(repo: Path) -> None:
    in_commit, in_tag = generate_key("live"), generate_key("test")
    sha = _commit(repo, "a.txt", "a\n", f"debugging with\n\nMSGINE key {in_commit}")
    git(repo, "tag", "-a", "v1", "-m", f"release\nkey: {in_tag}")
    tag_id = git(repo, "rev-parse", "v1")
    findings = {f.key: f for f in scan_paths([repo])}
    assert (findings[in_commit].path, findings[in_commit].commit) == ("(commit message)", sha)
    assert findings[in_commit].line == 3
    assert (findings[in_tag].path, findings[in_tag].commit) == ("(tag v1)", tag_id)


UTF16 = {
    "le-bom.txt": ("utf-16-le", b"\xff\xfe"),
    "le.txt": ("utf-16-le", b""),
    "be-bom.txt": ("utf-16-be", b"\xfe\xff"),
    "be.txt": ("utf-16-be", b""),
}


def test_utf16_files_are_scanned_in_the_tree_and_in_history(repo: Path) -> None:
    keys = {name: generate_key("live") for name in UTF16}
    for name, (codec, bom) in UTF16.items():
        _commit(repo, name, bom + f"line one\r\nAPI_KEY={keys[name]}\r\n".encode(codec))
    tree = {f.key: f.path for f in scan_paths([repo], history=False)}
    assert tree == {key: str(repo / name) for name, key in keys.items()}
    for name in UTF16:
        _remove(repo, name)
    history = {f.key: (f.path, f.commit is not None) for f in scan_paths([repo])}
    assert history == {key: (str(repo / name), True) for name, key in keys.items()}


def test_a_newline_in_a_file_name_cannot_forge_a_finding_line(repo: Path) -> None:
    key = generate_key("live")
    forged = "x.py:1: live key msgine_live_...FAKE\nreal"
    _commit(repo, forged, f"{key}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSGINE_", "GIT_"))}
    result = run_cli(env, "scan", str(repo))
    findings = scan_paths([repo])
    lines = result.stdout.splitlines()
    assert len(lines) == len(findings) == 2  # the tree and the commit that added it
    assert all(line.startswith(str(repo)) and "\\n" in line for line in lines)
    assert all(line.endswith(f"live key msgine_live_...{key[-4:]}") for line in lines)
    assert printable("a\nb\x1b[2J\u202ec\\") == "a\\nb\\x1b[2J\\u202ec\\\\"


MASTER_KEY = base64.b64encode(secrets.token_bytes(32)).decode()


def test_a_committed_master_key_is_found_and_fails_the_scan(repo: Path) -> None:
    added = _commit(repo, "msgine-data/master.key", MASTER_KEY + "\n")
    _commit(repo, "msgine-data/msgine.db", b"SQLite format 3\x00" + b"\x00" * 64)
    env_file = _commit(repo, "deploy/.env", f"MSGINE_PORT=8080\nMSGINE_MASTER_KEY={MASTER_KEY}\n")
    _commit(repo, "config/master.key", "5f2b9c0e8a7d4c3b2a1f0e9d8c7b6a59\n")  # a Rails-style key
    _remove(repo, "msgine-data/master.key")
    findings = scan_paths([repo])
    kinds = [(f.kind, os.path.relpath(f.path, repo), f.commit) for f in findings]
    assert ("master_key", "msgine-data/master.key", added) in kinds
    assert ("master_key", "deploy/.env", env_file) in kinds
    assert any(k == "gateway_data" and p == "msgine-data/msgine.db" for k, p, _ in kinds)
    assert not any(p == "config/master.key" for _, p, _ in kinds)
    assert all(MASTER_KEY not in repr(f) + format_finding(f) for f in findings)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSGINE_", "GIT_"))}
    result = run_cli(env, "scan", str(repo))
    assert result.returncode == 1
    assert MASTER_KEY not in result.stdout + result.stderr
    assert "master key" in result.stdout


def test_a_master_key_where_the_gateway_keeps_it_is_not_a_leak_until_committed(
    repo: Path,
) -> None:
    _commit(repo, ".gitignore", "msgine-data/\n")
    (repo / "msgine-data").mkdir()
    (repo / "msgine-data" / "master.key").write_text(MASTER_KEY + "\n")
    assert scan_paths([repo]) == []
    staged = repo / "staged" / "master.key"  # what a pre-commit hook passes: not ignored
    staged.parent.mkdir()
    staged.write_text(MASTER_KEY)
    [finding] = scan_paths([staged], history=False)
    assert finding.kind == "master_key"
