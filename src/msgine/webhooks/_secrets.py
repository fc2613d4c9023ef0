"""Where the webhook secret comes from: environment, ``.env``, a file, a callable or a cloud vault.

Every source is a ``CachedSecret``: a callable returning the current secrets, loaded lazily,
kept for ``ttl`` seconds and then reloaded, so rotating the secret in its store reaches running
receivers without a restart. A value may hold several secrets separated by spaces or commas
(``"whsec_new whsec_old"``) for rotation grace periods. Cloud SDKs are imported only when their
loader is first used; install the ``aws``, ``gcp`` or ``azure`` extra.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("msgine.security")

SecretValue = str | Sequence[str]
SecretSpec = str | Sequence[str] | Callable[[], SecretValue]
DEFAULT_TTL = 300.0
_RETRY_AFTER_FAILURE = 10.0


class SecretUnavailableError(RuntimeError):
    """No secret could be loaded (and none is cached)."""


def split_secrets(value: SecretValue) -> tuple[str, ...]:
    parts = value.replace(",", " ").split() if isinstance(value, str) else value
    secrets = tuple(part.strip() for part in parts if part and part.strip())
    if not secrets:
        raise SecretUnavailableError("the secret source returned no secret")
    return secrets


class CachedSecret:
    """Loads secrets with ``loader``; reloads after ``ttl`` seconds, keeping the last good value
    (for up to ``max_stale`` seconds) when a reload fails, so a vault outage is not an outage."""

    def __init__(
        self,
        loader: Callable[[], SecretValue],
        ttl: float = DEFAULT_TTL,
        *,
        max_stale: float = 3600.0,
        name: str = "secret",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self.ttl = ttl
        self.max_stale = max_stale
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._value: tuple[str, ...] | None = None
        self._loaded_at = 0.0
        self._next_load = 0.0

    def __repr__(self) -> str:
        return f"CachedSecret(name={self.name!r}, ttl={self.ttl})"

    def __call__(self) -> tuple[str, ...]:
        if self._value is not None and self._clock() < self._next_load:
            return self._value
        with self._lock:
            now = self._clock()
            if self._value is not None and now < self._next_load:
                return self._value
            try:
                self._value = split_secrets(self._loader())
            except Exception as exc:
                stale_ok = self._value is not None and now - self._loaded_at < self.max_stale
                logger.warning(
                    "webhook secret reload failed",
                    extra={"secret_source": self.name, "error_type": type(exc).__name__},
                )
                if not stale_ok or self._value is None:
                    raise SecretUnavailableError(f"could not load {self.name}") from None
                self._next_load = now + _RETRY_AFTER_FAILURE
                return self._value
            self._loaded_at = now
            self._next_load = now + self.ttl
            return self._value

    def invalidate(self) -> None:
        """Force a reload on next use, e.g. after verification failures right after a rotation."""
        self._next_load = 0.0


def resolve(spec: SecretSpec) -> Callable[[], tuple[str, ...]]:
    """A callable returning the current secrets, from a literal, a list or a callable."""
    if callable(spec):
        return spec if isinstance(spec, CachedSecret) else CachedSecret(spec, 0.0, name="callable")
    fixed = split_secrets(spec)
    return lambda: fixed


def from_env(name: str = "MSGINE_WEBHOOK_SECRET", ttl: float = DEFAULT_TTL) -> CachedSecret:
    def load() -> str:
        value = os.environ.get(name)
        if not value:
            raise SecretUnavailableError(f"environment variable {name} is not set")
        return value

    return CachedSecret(load, ttl, name=f"env:{name}")


def from_dotenv(
    path: str | os.PathLike[str] = ".env",
    name: str = "MSGINE_WEBHOOK_SECRET",
    ttl: float = DEFAULT_TTL,
) -> CachedSecret:
    """Read ``name`` from a ``.env`` file (needs python-dotenv); the process environment wins."""

    def load() -> str:
        if os.environ.get(name):
            return os.environ[name]
        try:
            from dotenv import dotenv_values
        except ImportError as exc:
            raise ImportError("from_dotenv needs python-dotenv: pip install python-dotenv") from exc
        value = dotenv_values(path).get(name)
        if not value:
            raise SecretUnavailableError(f"{name} is not set in the .env file")
        return value

    return CachedSecret(load, ttl, name=f"dotenv:{name}")


def from_file(path: str | os.PathLike[str], ttl: float = DEFAULT_TTL) -> CachedSecret:
    """Read a file holding the secret (Docker/Kubernetes secrets); re-read after ``ttl``."""
    return CachedSecret(lambda: Path(path).read_text("utf-8").strip(), ttl, name="file")


def from_callable(
    loader: Callable[[], SecretValue], ttl: float = DEFAULT_TTL, *, name: str = "callable"
) -> CachedSecret:
    return CachedSecret(loader, ttl, name=name)


def _json_field(value: str, json_key: str | None) -> str:
    if json_key is None:
        return value
    data = json.loads(value)
    if not isinstance(data, dict) or not isinstance(data.get(json_key), str):
        raise SecretUnavailableError("the secret's JSON has no such string field")
    result: str = data[json_key]
    return result


def from_aws_secrets_manager(
    secret_id: str,
    *,
    json_key: str | None = None,
    region_name: str | None = None,
    ttl: float = DEFAULT_TTL,
    client: Any = None,
) -> CachedSecret:
    """AWS Secrets Manager (extra ``aws``); ``json_key`` picks a field of a JSON secret."""

    def load() -> str:
        nonlocal client
        if client is None:
            import boto3

            client = boto3.client("secretsmanager", region_name=region_name)
        value = client.get_secret_value(SecretId=secret_id)["SecretString"]
        return _json_field(str(value), json_key)

    return CachedSecret(load, ttl, name="aws-secrets-manager")


def from_gcp_secret_manager(
    name: str, *, ttl: float = DEFAULT_TTL, client: Any = None
) -> CachedSecret:
    """Google Secret Manager (extra ``gcp``); ``name`` is a full version path such as
    ``projects/P/secrets/S/versions/latest``."""

    def load() -> str:
        nonlocal client
        if client is None:
            from google.cloud import secretmanager

            client = secretmanager.SecretManagerServiceClient()
        response = client.access_secret_version(name=name)
        return bytes(response.payload.data).decode("utf-8")

    return CachedSecret(load, ttl, name="gcp-secret-manager")


def from_azure_key_vault(
    vault_url: str,
    name: str,
    *,
    credential: Any = None,
    ttl: float = DEFAULT_TTL,
    client: Any = None,
) -> CachedSecret:
    """Azure Key Vault (extra ``azure``); uses ``DefaultAzureCredential`` unless given one."""

    def load() -> str:
        nonlocal client
        if client is None:
            from azure.keyvault.secrets import SecretClient

            if credential is None:
                from azure.identity import DefaultAzureCredential

                cred: Any = DefaultAzureCredential()
            else:
                cred = credential
            client = SecretClient(vault_url=vault_url, credential=cred)
        return str(client.get_secret(name).value)

    return CachedSecret(load, ttl, name="azure-key-vault")
