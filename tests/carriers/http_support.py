"""Helpers of the HTTP upstream tests: a provider stand-in, carriers added as the CLI adds them,
signed MsGine events, and a TCP proxy (TLS terminating, or killing a process mid-answer).

Reusable by every HTTP kind's tests: ``add_http_carrier``, ``TcpProxy``, ``Receiver`` (from
``webhook_receiver``: a scripted HTTP(S) server recording requests).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from carriers_helpers import Operator

from msgine.webhooks import encode_body, generate_secret, signature_headers
from webhook_receiver import Hit, Reply

API_KEY = "msgine_live_" + "Up5treamK3y" * 3  # a credential that must never show anywhere


def msgine_accepts(hit: Hit) -> Reply:
    """MsGine's 201 for a send: every recipient queued, one message id."""
    body = json.loads(hit.body)
    numbers = body["to"] if isinstance(body["to"], list) else [body["to"]]
    answer = {
        "id": "msg_" + secrets.token_hex(8),
        "status": "queued",
        "recipients": [{"to": n, "status": "queued"} for n in numbers],
    }
    return Reply(201, {"Content-Type": "application/json"}, json.dumps(answer).encode())


def error_reply(status: int, code: str, **headers: str) -> Reply:
    """An answer in the contract's error format."""
    body = {"error": {"code": code, "message": "refused", "details": {}}, "meta": {}}
    return Reply(status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode())


async def drain_and_stop(api: Any) -> None:
    """Run the worker until nothing is due, then stop the carriers it started."""
    try:
        await api.drain()
    finally:
        await api.worker.fleet.stop_all()


def add_http_carrier(
    operator: Operator,
    name: str,
    kind: str,
    options: dict[str, Any],
    credentials: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """Add a carrier through the service the CLI calls; the view holds the one-time token."""
    from msgine.server.carriers._config import add_carrier

    runtime = operator.runtime
    return runtime.db.write(  # type: ignore[no-any-return]
        lambda conn: add_carrier(
            conn,
            runtime.vault,
            name=name,
            kind=kind,
            options=options,
            credentials=credentials,
            now=runtime.now(),
            actor=operator.actor,
            **extra,
        )
    )


def msgine_event(
    event: str, message_id: str, to: str, secret: str, *, when: datetime | None = None, **data: Any
) -> tuple[bytes, dict[str, str]]:
    """A MsGine webhook delivery (body, headers), signed as MsGine signs it."""
    now = when or datetime.now(UTC)
    document = {
        "id": "evt_" + secrets.token_hex(8),
        "event": event,
        "livemode": False,
        "status": event.split(".")[1],
        "messageId": message_id,
        "to": to,
        "from": "MsGine",
        "sid": message_id,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    body = encode_body(document)
    headers = signature_headers([secret], document["id"], int(now.timestamp()), body)
    return body, headers


def new_webhook_secret() -> str:
    return generate_secret()


class TcpProxy:
    """Forwards TCP connections from a local port to ``target_port``, in a thread. With
    ``tls`` it terminates TLS (a trustme context); ``on_answer`` runs when the target's first
    answer bytes arrive, before they are passed on (``return False`` drops them)."""

    def __init__(
        self,
        target_port: int,
        tls: ssl.SSLContext | None = None,
        on_answer: Callable[[], bool] | None = None,
    ) -> None:
        self.target_port = target_port
        self.tls = tls
        self.on_answer = on_answer
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer, None), self._pipe(up_reader, writer, self.on_answer)
        )

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        hook: Callable[[], bool] | None,
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if hook is not None:
                    passed, hook = hook(), None
                    if not passed:
                        break
                writer.write(chunk)
                await writer.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
