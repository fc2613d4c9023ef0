"""The examples run: senders against a real gateway, receivers through their test clients."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from msgine.webhooks import encode_body, generate_secret, signature_headers

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.mark.slow
@pytest.mark.parametrize("script", ["send.py", "async_send.py"])
def test_senders_run_against_the_gateway(gateway: Any, script: str) -> None:
    env = {**os.environ, "MSGINE_API_KEY": gateway.api_key, "MSGINE_BASE_URL": gateway.base_url}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "+256701521269"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "sent msg_" in result.stdout
    assert gateway.api_key not in result.stdout + result.stderr


def load(name: str, monkeypatch: pytest.MonkeyPatch, secret: str) -> ModuleType:
    monkeypatch.setenv("MSGINE_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("MSGINE_EGRESS_IPS", "203.0.113.0/24")
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def signed() -> tuple[str, bytes, dict[str, str]]:
    secret = generate_secret()
    body = encode_body({"id": "evt_ex", "event": "message.delivered"})
    return secret, body, signature_headers([secret], "evt_ex", int(time.time()), body)


def test_fastapi_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    secret, body, headers = signed()
    app = load("fastapi_receiver", monkeypatch, secret).app
    client = TestClient(app, client=("203.0.113.5", 5000))
    assert client.post("/webhooks/msgine", content=body, headers=headers).status_code == 200
    assert client.post("/webhooks/msgine", content=body, headers={}).status_code == 401


def test_flask_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    secret, body, headers = signed()
    app = load("flask_receiver", monkeypatch, secret).app
    client = app.test_client()
    environ = {"REMOTE_ADDR": "203.0.113.5"}
    assert (
        client.post(
            "/webhooks/msgine", data=body, headers=headers, environ_base=environ
        ).status_code
        == 204
    )
    assert (
        client.post(
            "/webhooks/msgine",
            data=body,
            headers=headers,
            environ_base={"REMOTE_ADDR": "198.51.100.1"},
        ).status_code
        == 403
    )
