"""``MsGineClient`` and ``AsyncMsGineClient``: configuration, transport and the retry loop."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self, TypeVar

import httpx

from . import _base
from ._async_resources import (
    AsyncAccount,
    AsyncAnalytics,
    AsyncConsents,
    AsyncKeys,
    AsyncMessages,
    AsyncPrivacy,
    AsyncSms,
    AsyncSuppressions,
    AsyncWebhooks,
)
from ._calls import Call
from ._config import ApiKeyAuth, resolve_api_key, resolve_base_url
from ._errors import MsGineError
from ._resources import (
    Account,
    Analytics,
    Consents,
    Keys,
    Messages,
    Privacy,
    Sms,
    Suppressions,
    Webhooks,
)
from ._retry import RetryPolicy, is_replay_safe, is_retryable_status, never_reached_server

T = TypeVar("T")
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class _ClientBase:
    """Settings shared by both clients; resolving them here makes both refuse the same inputs."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int | None,
        retry: RetryPolicy | None,
        allow_insecure_http: bool,
    ) -> None:
        self._auth = ApiKeyAuth(resolve_api_key(api_key))
        self.base_url = resolve_base_url(base_url, allow_insecure_http=allow_insecure_http)
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        policy = retry or RetryPolicy()
        if max_retries is not None:
            policy = dataclasses.replace(policy, max_retries=max_retries)
        self.retry = policy

    def _plan_retry(
        self,
        request: httpx.Request,
        retry_index: int,
        response: httpx.Response | None,
        exc: httpx.TransportError | None,
    ) -> float:
        """Seconds to wait before the next attempt; raises the final error when not retrying."""
        if exc is not None:
            error: MsGineError = _base.error_from_transport(exc)
            safe = never_reached_server(exc) or is_replay_safe(request)
            delay = self.retry.delay(retry_index, None) if safe else None
        else:
            assert response is not None
            error = _base.error_from_response(response)
            safe = is_retryable_status(response.status_code) and is_replay_safe(request)
            delay = self.retry.delay(retry_index, response) if safe else None
        if delay is None:
            raise error from exc
        _base.log_retry(request, retry_index + 1, delay, error.code)
        return delay

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={self._auth.redacted!r})"


class MsGineClient(_ClientBase):
    """Synchronous client. Use as a context manager, or call ``close()``, to free connections."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        allow_insecure_http: bool = False,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries, retry, allow_insecure_http)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=self.timeout,
            transport=transport,
            verify=verify,
            follow_redirects=False,
            headers={"User-Agent": _base.USER_AGENT},
        )
        self._sleep = sleep
        self.sms = Sms(self._execute)
        self.messages = Messages(self._execute)
        self.webhooks = Webhooks(self._execute)
        self.keys = Keys(self._execute)
        self.consents = Consents(self._execute)
        self.suppressions = Suppressions(self._execute)
        self.privacy = Privacy(self._execute)
        self.account = Account(self._execute)
        self.analytics = Analytics(self._execute)

    def _execute(self, call: Call[T]) -> T:
        request = _base.build_request(self._http, self.base_url, call)
        retry_index = 0
        while True:
            try:
                response = _base.send(self._http, request, self._auth)
            except httpx.TransportError as exc:
                delay = self._plan_retry(request, retry_index, None, exc)
            else:
                if response.is_success:
                    return _base.parse_response(call, response)
                delay = self._plan_retry(request, retry_index, response, None)
            self._sleep(delay)
            retry_index += 1

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncMsGineClient(_ClientBase):
    """Asynchronous client with the same resources; use ``async with`` or ``await aclose()``."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        allow_insecure_http: bool = False,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries, retry, allow_insecure_http)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=self.timeout,
            transport=transport,
            verify=verify,
            follow_redirects=False,
            headers={"User-Agent": _base.USER_AGENT},
        )
        self._sleep = sleep
        self.sms = AsyncSms(self._execute)
        self.messages = AsyncMessages(self._execute)
        self.webhooks = AsyncWebhooks(self._execute)
        self.keys = AsyncKeys(self._execute)
        self.consents = AsyncConsents(self._execute)
        self.suppressions = AsyncSuppressions(self._execute)
        self.privacy = AsyncPrivacy(self._execute)
        self.account = AsyncAccount(self._execute)
        self.analytics = AsyncAnalytics(self._execute)

    async def _execute(self, call: Call[T]) -> T:
        request = _base.build_request(self._http, self.base_url, call)
        retry_index = 0
        while True:
            try:
                response = await _base.asend(self._http, request, self._auth)
            except httpx.TransportError as exc:
                delay = self._plan_retry(request, retry_index, None, exc)
            else:
                if response.is_success:
                    return _base.parse_response(call, response)
                delay = self._plan_retry(request, retry_index, response, None)
            await self._sleep(delay)
            retry_index += 1

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
