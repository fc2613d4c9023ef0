"""API9:2023 Improper inventory management: what the gateway publishes about itself is true.

* The audit chain's head is published (security log and anchor file) so that cutting the log's
  tail is caught by ``msgine audit verify --anchor``.
* The OpenAPI document is the inventory: every route the server answers is in it, with the
  status codes it really answers and typed bodies, the key styles it accepts as security
  schemes, and the package's real version.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from security_helpers import json_lines, run_cli, settings_env

from msgine.server.audit import Actor, HeadPublisher, read_head, record
from msgine.server.storage._tables import audit_log
from support import Gateway, gateway_env, make_settings, start_gateway

# --- the audit chain's head ---------------------------------------------------------------


def _append(runtime: Any, count: int) -> None:
    for n in range(count):
        runtime.db.write(
            lambda conn, n=n: record(
                conn,
                runtime.vault,
                Actor("cli:test"),
                "test.action",
                now=runtime.now(),
                target=str(n),
            )
        )


def _cut_tail(runtime: Any, keep: int) -> None:
    runtime.db.write(lambda conn: conn.execute(sa.delete(audit_log).where(audit_log.c.seq > keep)))


async def test_a_cut_tail_fails_verification_against_the_published_head(
    runtime: Any, tmp_path: Path
) -> None:
    anchor = tmp_path / "anchor" / "audit-head.json"
    security_log = tmp_path / "security.log"
    runtime.settings.audit_anchor_file = anchor
    _append(runtime, 5)
    published = await HeadPublisher(runtime).publish()
    assert published is not None and published.seq == 5
    assert json.loads(anchor.read_text())["seq"] == 5
    env = settings_env(runtime.settings, MSGINE_SECURITY_LOG_PATH=str(security_log))

    intact = run_cli(env, "audit", "verify", "--anchor", str(anchor))
    assert intact.returncode == 0, intact.stderr
    assert "up to the published head at seq 5" in intact.stdout

    _cut_tail(runtime, keep=3)
    plain = run_cli(env, "audit", "verify")
    assert plain.returncode == 0  # the shorter chain is internally consistent
    for args in (
        ("--anchor", str(anchor)),
        ("--anchor-seq", "5", "--anchor-hash", published.hash),
    ):
        cut = run_cli(env, "audit", "verify", *args)
        assert cut.returncode == 1, cut.stdout
        assert cut.stderr.strip() == "error: audit log broken at seq 4, id (missing): truncated"
    [alert, *_] = [e for e in json_lines(security_log) if e["event"] == "audit_chain_broken"]
    assert alert["reason"] == "truncated"


def test_a_rewritten_entry_at_the_anchor_fails_verification(runtime: Any, tmp_path: Path) -> None:
    _append(runtime, 3)
    head = runtime.db.read(read_head)
    env = settings_env(runtime.settings)
    other = "f" * 64
    wrong = run_cli(env, "audit", "verify", "--anchor-seq", str(head.seq), "--anchor-hash", other)
    assert wrong.returncode == 1
    assert "hash_mismatch" in wrong.stderr
    right = run_cli(
        env, "audit", "verify", "--anchor-seq", str(head.seq), "--anchor-hash", head.hash
    )
    assert right.returncode == 0, right.stderr


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--anchor-seq", "3"), "--anchor-seq and --anchor-hash go together"),
        (("--anchor-seq", "3", "--anchor-hash", "abc"), "64 lower-case hex characters"),
        (("--anchor", "missing.json"), "cannot read"),
    ],
)
def test_anchor_options_are_checked(tmp_path: Path, args: tuple[str, ...], problem: str) -> None:
    bad = run_cli(settings_env(make_settings(tmp_path)), "audit", "verify", *args, cwd=tmp_path)
    assert bad.returncode == 2
    assert problem in bad.stderr


@pytest.mark.slow
def test_serve_publishes_the_head_to_the_security_log_and_the_anchor_file(
    tmp_path: Path,
) -> None:
    anchor = tmp_path / "audit-head.json"
    security_log = tmp_path / "security.log"
    env = gateway_env(
        tmp_path,
        MSGINE_AUDIT_ANCHOR_FILE=str(anchor),
        MSGINE_AUDIT_ANCHOR_INTERVAL="0.1",
        MSGINE_SECURITY_LOG_PATH=str(security_log),
    )
    gw = start_gateway(env, cwd=tmp_path)
    try:
        headers = {"X-Api-Key": gw.api_key}
        for n in range(3):
            made = httpx.post(f"{gw.base_url}/keys", json={"name": f"k{n}"}, headers=headers)
            assert made.status_code == 201, made.text
        newest = _newest_entry(gw)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if anchor.exists() and json.loads(anchor.read_text())["seq"] == newest["seq"]:
                break
            time.sleep(0.1)
        published = json.loads(anchor.read_text())
        assert (published["seq"], published["hash"]) == (newest["seq"], newest["hash"])
        heads = [e for e in json_lines(security_log) if e["event"] == "audit_head"]
        assert (heads[-1]["seq"], heads[-1]["hash"]) == (newest["seq"], newest["hash"])
    finally:
        gw.stop()
    assert gw.cli("audit", "verify", "--anchor", str(security_log)).returncode == 0
    _delete_newest(gw, 2)
    assert gw.cli("audit", "verify").returncode == 0
    for source in (anchor, security_log):
        cut = gw.cli("audit", "verify", "--anchor", str(source), check=False)
        assert cut.returncode == 1
        assert "truncated" in cut.stderr


def _newest_entry(gw: Gateway) -> dict[str, Any]:
    listed = gw.cli("audit", "list", "--limit", "1", "--json")
    [entry] = json.loads(listed.stdout)
    return dict(entry)


def _delete_newest(gw: Gateway, count: int) -> None:
    engine = sa.create_engine(f"sqlite:///{Path(gw.env['MSGINE_DATA_DIR']) / 'msgine.db'}")
    with engine.begin() as conn:
        newest = conn.execute(sa.select(sa.func.max(audit_log.c.seq))).scalar_one()
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq > newest - count))
    engine.dispose()
