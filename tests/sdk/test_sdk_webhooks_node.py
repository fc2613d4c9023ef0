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


# MsGine's security guide for Node receivers: the header against one hex HMAC of the parsed body.
GUIDE_SCRIPT = r"""
const crypto = require("crypto");
function verifyWebhook(req, secret) {
  const signature = req.headers["x-msgine-signature"];
  const expected = crypto
    .createHmac("sha256", secret)
    .update(JSON.stringify(req.body))
    .digest("hex");
  return crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
}
function outcome(req, secret) {
  try {
    return verifyWebhook(req, secret) ? "ok" : "mismatch";
  } catch (e) {
    return "threw";
  }
}
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const req = { headers: input.headers, body: JSON.parse(input.body) };
const out = { each: {}, rotating: "mismatch" };
for (const [name, secret] of Object.entries(input.secrets)) {
  out.each[name] = outcome(req, secret);
}
// The rotation procedure docs/webhooks.md gives: try the secrets held, old first.
for (const name of input.held) {
  if (outcome(req, input.secrets[name]) === "ok") { out.rotating = "ok"; break; }
}
process.stdout.write(JSON.stringify(out));
"""


def run_guide(
    directory: Path, signing: list[str], secrets: dict[str, str], held: list[str]
) -> dict[str, object]:
    now = int(time.time())
    body = encode_body({"id": "evt_r", "event": "message.sent", "data": {"t": "é ✓"}})
    headers = signature_headers(signing, "evt_r", now, body)
    (directory / "guide.js").write_text(GUIDE_SCRIPT)
    result = subprocess.run(
        ["node", "guide.js"],
        cwd=directory,
        input=json.dumps(
            {"body": body.decode(), "headers": headers, "secrets": secrets, "held": held}
        ),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    output: dict[str, object] = json.loads(result.stdout)
    return output


def test_the_security_guides_node_receiver_survives_a_rotation(node_dir: Path) -> None:
    """Before, during and after a grace period, the guide's code never throws, the secret it
    holds keeps verifying until the switch, and holding both (old first) always verifies."""
    old, new = generate_secret(), generate_secret()
    secrets = {"old": old, "new": new}
    before = run_guide(node_dir, [old], secrets, ["old"])
    assert before["each"] == {"old": "ok", "new": "mismatch"}
    during = run_guide(node_dir, [new, old], secrets, ["old", "new"])
    assert during["each"] == {"old": "ok", "new": "mismatch"}
    assert during["rotating"] == "ok"
    after = run_guide(node_dir, [new], secrets, ["old", "new"])
    assert after["each"] == {"old": "mismatch", "new": "ok"}
    assert after["rotating"] == "ok"
