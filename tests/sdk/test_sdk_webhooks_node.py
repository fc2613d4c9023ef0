"""Cross-check with the separate Node implementation of Standard Webhooks (npm standardwebhooks)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from msgine.webhooks import encode_body, generate_secret, signature_headers, verify

SCRIPT = r"""
const { Webhook } = require("standardwebhooks");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const wh = new Webhook(input.secret);
const out = {};
out.signature = wh.sign(input.id, new Date(input.timestamp * 1000), input.body);
try {
  out.verified = wh.verify(input.body, input.headers);
} catch (e) {
  out.error = String(e.message);
}
out.roundTrip = JSON.stringify(JSON.parse(input.body)) === input.body;
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="session")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the Node cross-check")
    directory = tmp_path_factory.mktemp("node-standardwebhooks")
    try:
        subprocess.run(
            [npm, "install", "--silent", "--no-audit", "--no-fund", "standardwebhooks"],
            cwd=directory,
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"npm install standardwebhooks failed ({type(exc).__name__}); offline?")
    (directory / "check.js").write_text(SCRIPT)
    return directory


def run_node(directory: Path, **payload: object) -> dict[str, object]:
    result = subprocess.run(
        ["node", "check.js"],
        cwd=directory,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    output: dict[str, object] = json.loads(result.stdout)
    return output


def test_node_and_python_agree_both_ways(node_dir: Path) -> None:
    secret = generate_secret()
    now = int(time.time())
    body = encode_body(
        {"id": "evt_n", "event": "message.sent", "to": "+256701521269", "data": {"t": "é ✓ \u2028"}}
    )
    headers = signature_headers([secret, generate_secret()], "evt_n", now, body)
    out = run_node(
        node_dir, secret=secret, id="evt_n", timestamp=now, body=body.decode(), headers=headers
    )
    # Node verifies what we signed, and JSON.stringify(JSON.parse(body)) gives our exact bytes.
    assert out.get("error") is None
    assert out["verified"] == json.loads(body)
    assert out["roundTrip"] is True
    # We verify what Node signed.
    node_headers = {
        "webhook-id": "evt_n",
        "webhook-timestamp": str(now),
        "webhook-signature": str(out["signature"]),
    }
    assert verify(body, node_headers, secret, now=now)["id"] == "evt_n"


def test_node_rejects_a_tampered_delivery_too(node_dir: Path) -> None:
    secret = generate_secret()
    now = int(time.time())
    body = encode_body({"id": "evt_t", "event": "message.sent"})
    headers = signature_headers([secret], "evt_t", now, body)
    tampered = body.decode().replace("sent", "failed")
    out = run_node(
        node_dir, secret=secret, id="evt_t", timestamp=now, body=tampered, headers=headers
    )
    assert out.get("error")
