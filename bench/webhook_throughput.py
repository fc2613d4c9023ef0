"""Webhook delivery speed: signed deliveries per second to a local HTTPS receiver at several
concurrencies, and the lag from a status change (event written) to its arrival (p50/p99).

The dispatcher runs in this process over a real database (SQLite by default, or --database-url
postgresql://...); the receiver is a separate uvicorn process with a certificate from a throwaway
CA, answering 200 and noting when each event arrived. Run: ``python bench/webhook_throughput.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import trustme

RECEIVER = textwrap.dedent(
    """
    import json, sys, time
    from datetime import datetime
    import uvicorn

    lags, count = [], 0

    async def app(scope, receive, send):
        global count, lags
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST":
            count += 1
            stamp = json.loads(body)["timestamp"].replace("Z", "+00:00")
            lags.append(time.time() - datetime.fromisoformat(stamp).timestamp())
            payload = b""
        elif scope["path"] == "/reset":
            count, lags, payload = 0, [], b"{}"
        else:
            payload = json.dumps({"count": count, "lags": lags}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), ssl_certfile=sys.argv[2],
                ssl_keyfile=sys.argv[3], log_level="warning", access_log=False)
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReceiverProcess:
    def __init__(self, workdir: Path, ca: trustme.CA) -> None:
        cert = ca.issue_cert("127.0.0.1")
        certfile, keyfile = workdir / "cert.pem", workdir / "key.pem"
        cert.cert_chain_pems[0].write_to_path(str(certfile))
        cert.private_key_pem.write_to_path(str(keyfile))
        ca_file = workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        self.ca_file = ca_file
        self.port = free_port()
        script = workdir / "receiver.py"
        script.write_text(RECEIVER)
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(self.port), str(certfile), str(keyfile)]
        )
        self._client = httpx.Client(verify=_trusting(ca), timeout=10)
        self._wait_ready()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/hook"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.stats()
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("receiver did not start")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._client.get(f"https://127.0.0.1:{self.port}/stats").json()
        return result

    def reset(self) -> None:
        self._client.get(f"https://127.0.0.1:{self.port}/reset")

    def close(self) -> None:
        self._client.close()
        self.process.terminate()
        self.process.wait(timeout=10)


def _trusting(ca: trustme.CA) -> Any:
    import ssl

    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def open_runtime(workdir: Path, ca_file: Path, database_url: str | None) -> Any:
    from msgine.server.config import Settings
    from msgine.server.runtime import Runtime

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=workdir / "data",
        database_url=database_url,
        master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        webhook_allow_private=True,
        webhook_ca_bundle=ca_file,
    )
    return Runtime.open(settings)


def setup_endpoint(runtime: Any, url: str) -> str:
    from msgine.server.accounts import create_account
    from msgine.server.audit import Actor
    from msgine.server.webhooks import _endpoints

    def apply(conn: Any) -> str:
        account_id = create_account(conn, "bench", runtime.now())
        _endpoints.create_endpoint(
            conn,
            runtime.vault,
            Actor("bench"),
            account_id=account_id,
            mode="live",
            url=url,
            subscribed=[],
            description=None,
            now=runtime.now(),
        )
        return account_id

    account: str = runtime.db.write(apply)
    return account


def emit_events(runtime: Any, account_id: str, count: int) -> None:
    """``count`` message.delivered events, written as a status change writes them."""
    for start in range(0, count, 500):
        batch = min(500, count - start)
        runtime.db.write(lambda conn, n=batch: _emit(conn, runtime, account_id, n))


def _emit(conn: Any, runtime: Any, account_id: str, count: int) -> None:
    from msgine.server import events

    now = runtime.now()
    for _ in range(count):
        events.emit(
            conn,
            runtime.vault,
            account_id=account_id,
            mode="live",
            event_type="message.delivered",
            now=now,
            fields={
                "status": "delivered",
                "messageId": "msg_bench",
                "to": "+256701521269",
                "from": "MsGine",
                "sid": "msg_bench",
            },
            data={"recipientId": "rcp_bench", "segments": 1, "messageStatus": "delivered"},
        )


async def wait_delivered(receiver: ReceiverProcess, expected: int) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if (await asyncio.to_thread(receiver.stats))["count"] >= expected:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("deliveries did not all arrive")


async def throughput(
    runtime: Any, account: str, receiver: ReceiverProcess, concurrency: int, count: int
) -> float:
    from msgine.server.webhooks._dispatch import Dispatcher

    receiver.reset()
    emit_events(runtime, account, count)
    dispatcher = Dispatcher(runtime, concurrency=concurrency)
    stop = asyncio.Event()
    started = time.perf_counter()
    loop = asyncio.create_task(dispatcher.run(stop))
    await wait_delivered(receiver, count)
    elapsed = time.perf_counter() - started
    stop.set()
    await loop
    await dispatcher.aclose()
    return count / elapsed


async def lag(
    runtime: Any, account: str, receiver: ReceiverProcess, rate: int, seconds: float
) -> list[float]:
    from msgine.server.webhooks._dispatch import Dispatcher

    receiver.reset()
    dispatcher = Dispatcher(runtime)
    stop = asyncio.Event()
    loop = asyncio.create_task(dispatcher.run(stop))
    tick, sent = 0.05, 0
    per_tick = max(1, round(rate * tick))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.to_thread(emit_events, runtime, account, per_tick)
        sent += per_tick
        await asyncio.sleep(tick)
    await wait_delivered(receiver, sent)
    stop.set()
    await loop
    await dispatcher.aclose()
    lags: list[float] = receiver.stats()["lags"]
    return lags


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", default="16,64,128")
    parser.add_argument("--rate", type=int, default=200, help="events/s in the lag run")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        receiver = ReceiverProcess(workdir, trustme.CA())
        runtime = open_runtime(workdir, receiver.ca_file, args.database_url)
        try:
            account = setup_endpoint(runtime, receiver.url)
            backend = runtime.db.read_engine.dialect.name
            print(
                f"webhook deliveries to a local HTTPS receiver ({backend}, {os.cpu_count()} CPUs)"
            )
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                rate = await throughput(runtime, account, receiver, concurrency, args.events)
                print(
                    f"  concurrency {concurrency:>4}: {rate:8.0f} signed deliveries/s "
                    f"({args.events} events)"
                )
            lags = await lag(runtime, account, receiver, args.rate, args.seconds)
            poll = runtime.settings.worker_poll_interval
            p50, p99 = (percentile(lags, pct) * 1000 for pct in (50, 99))
            print(
                f"  lag, status change to delivery, {args.rate} events/s for {args.seconds:.0f} s "
                f"(poll interval {poll * 1000:.0f} ms): p50 {p50:.0f} ms, p99 {p99:.0f} ms"
            )
        finally:
            runtime.close()
            receiver.close()


if __name__ == "__main__":
    asyncio.run(main())
