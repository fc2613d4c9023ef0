"""Helpers for the SDK tests: a scripted HTTP server on 127.0.0.1, canned JSON, service checks."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

REDIS_URL = os.environ.get("MSGINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "MSGINE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def unavailable(what: str, error: Exception) -> None:
    """Skip when a local service is missing, except in CI, where that is a failure."""
    message = f"{what} is not reachable ({type(error).__name__}); start it to run this test"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """Answers requests with the scripted replies in order (the last one repeats)."""

    def __init__(self) -> None:
        self.replies: list[Reply] = [Reply(200, {})]
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server._lock:
                    server.seen.append(
                        Seen(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    reply = server.replies[min(len(server.seen), len(server.replies)) - 1]
                data = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Request-Id", f"req_{len(server.seen)}")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v1"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def script(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.seen.clear()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def message_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "msg_1",
        "sid": "SM1",
        "channel": "sms",
        "to": ["+256701521269"],
        "from": "MyApp",
        "content": "Hello",
        "status": "queued",
        "cost": 0.03,
        "currency": "USD",
        "segments": 1,
        "encoding": "GSM-7",
        "createdAt": "2025-01-01T00:00:00Z",
        "recipients": [{"to": "+256701521269", "status": "queued"}],
    }
    data.update(overrides)
    return data


def error_json(code: str, message: str = "refused", **extra: Any) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "details": {}, **extra},
        "meta": {"requestId": "req_x"},
    }
