"""Secret sources: caching, refresh on rotation, stale fallback, cloud loaders with stub clients."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from msgine.webhooks import (
    CachedSecret,
    SecretUnavailableError,
    from_aws_secrets_manager,
    from_azure_key_vault,
    from_callable,
    from_dotenv,
    from_env,
    from_file,
    from_gcp_secret_manager,
    generate_secret,
)
from support import require_extra


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cached_and_refreshed_after_ttl() -> None:
    clock = Clock()
    values = iter(["whsec_a", "whsec_b whsec_a"])
    calls: list[int] = []

    def load() -> str:
        calls.append(1)
        return next(values)

    secret = CachedSecret(load, ttl=60, clock=clock)
    assert secret() == ("whsec_a",)
    assert secret() == ("whsec_a",)
    assert len(calls) == 1
    clock.now = 61
    assert secret() == ("whsec_b", "whsec_a")  # rotated: both valid during the grace period


def test_failed_reload_keeps_the_last_value_then_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    secret_value = generate_secret()
    state = {"fail": False}

    def load() -> str:
        if state["fail"]:
            raise ConnectionError(f"vault down; last value {secret_value}")
        return secret_value

    secret = CachedSecret(load, ttl=10, max_stale=100, clock=clock)
    assert secret() == (secret_value,)
    state["fail"] = True
    clock.now = 11
    with caplog.at_level(logging.WARNING, logger="msgine.security"):
        assert secret() == (secret_value,)
    assert secret_value not in caplog.text
    clock.now = 200
    with pytest.raises(SecretUnavailableError) as caught:
        secret()
    assert secret_value not in str(caught.value)
    assert secret_value not in repr(secret)


def test_env_and_file_and_callable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = generate_secret()
    monkeypatch.setenv("MY_HOOK_SECRET", value)
    assert from_env("MY_HOOK_SECRET")() == (value,)
    monkeypatch.delenv("MY_HOOK_SECRET")
    with pytest.raises(SecretUnavailableError):
        from_env("MY_HOOK_SECRET")()
    path = tmp_path / "secret"
    path.write_text(value + "\n")
    source = from_file(path, ttl=0)
    assert source() == (value,)
    rotated = generate_secret()
    path.write_text(f"{rotated},{value}")
    assert source() == (rotated, value)  # picked up without a restart
    assert from_callable(lambda: [value])() == (value,)


def test_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = generate_secret()
    monkeypatch.delenv("MSGINE_WEBHOOK_SECRET", raising=False)
    env = tmp_path / ".env"
    env.write_text(f'MSGINE_WEBHOOK_SECRET="{value}"\n')
    assert from_dotenv(env)() == (value,)


def test_aws_secrets_manager_with_botocore_stubber() -> None:
    boto3 = require_extra("boto3", "aws")
    from botocore.stub import Stubber

    value = generate_secret()
    client = boto3.client(
        "secretsmanager", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_response(
            "get_secret_value",
            {"SecretString": json.dumps({"webhook": value}), "Name": "hooks"},
            {"SecretId": "hooks"},
        )
        assert from_aws_secrets_manager("hooks", json_key="webhook", client=client)() == (value,)
        stub.assert_no_pending_responses()


def test_gcp_and_azure_loaders_with_stub_clients() -> None:
    value = generate_secret()
    calls: list[Any] = []

    class Gcp:
        def access_secret_version(self, name: str) -> Any:
            calls.append(name)
            return SimpleNamespace(payload=SimpleNamespace(data=value.encode()))

    class Azure:
        def get_secret(self, name: str) -> Any:
            calls.append(name)
            return SimpleNamespace(value=value)

    name = "projects/p/secrets/s/versions/latest"
    assert from_gcp_secret_manager(name, client=Gcp())() == (value,)
    assert from_azure_key_vault("https://v.vault.azure.net", "hook", client=Azure())() == (value,)
    assert calls == [name, "hook"]
