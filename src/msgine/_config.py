"""Client settings from arguments or the environment, with the safety checks made up front."""

from __future__ import annotations

import os
from collections.abc import Generator
from urllib.parse import urlsplit

import httpx

from . import _keyformat
from ._errors import MsGineConfigurationError

DEFAULT_BASE_URL = "https://api.msgine.net/api/v1"
API_KEY_ENV = "MSGINE_API_KEY"
BASE_URL_ENV = "MSGINE_BASE_URL"
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class ApiKeyAuth(httpx.Auth):
    """Adds the key to each request, so it never sits in client-wide headers or reprs."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        yield request

    @property
    def redacted(self) -> str:
        return _keyformat.redact(self._api_key)

    def __repr__(self) -> str:
        return f"ApiKeyAuth({self.redacted!r})"


def resolve_api_key(api_key: str | None) -> str:
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
    key = key.strip()
    if not key:
        raise MsGineConfigurationError(f"no API key: pass api_key= or set {API_KEY_ENV}")
    if not key.isascii() or not key.isprintable() or " " in key:
        raise MsGineConfigurationError("the API key contains characters no key can contain")
    if key.startswith(tuple(_keyformat.PREFIXES.values())) and not _keyformat.is_valid_key(key):
        # A MsGine-format key with a bad checksum is a typo or truncation: fail before sending it.
        raise MsGineConfigurationError("the API key is malformed (its checksum does not match)")
    return key


def resolve_base_url(base_url: str | None, *, allow_insecure_http: bool) -> str:
    url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MsGineConfigurationError("base_url must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise MsGineConfigurationError("base_url must not contain credentials")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS and not allow_insecure_http:
        raise MsGineConfigurationError(
            "refusing plain-http base_url for a non-local host (the API key would travel "
            "unencrypted); use https or pass allow_insecure_http=True"
        )
    return url
