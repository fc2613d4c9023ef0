"""Cost of MsGine's rate-limit checks per send request, with memory and with Redis storage.

Runs the API's own hooks (`msgine.server.api._limits`) as a send request meets them: address
lock-out and per-address limit before authentication, key and account limits after it, then
the recipient limit (and, with --daily-cap, the account's daily cap) before the message is
stored. With `--send-rate N` (requests/s of the send path, measured with limits in place) it
prints the share of throughput the checks take. Costs are CPU time of this process (what a
CPU-bound gateway loses); wall time is printed too, as it includes Redis round trips and any
other load on the machine.

    python bench/ratelimit_overhead.py [--redis-url redis://127.0.0.1:6379/0] [--send-rate 280]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from starlette.requests import Request

from msgine.server.api import create_app
from msgine.server.config import Settings
from msgine.server.keys import SCOPES, Principal
from msgine.server.messages._service import build_command
from msgine.server.runtime import Runtime, ensure_default_account

# The default limits' shape (two windows per key), with amounts nothing reaches: refusals are
# cheaper and would flatter the figures.
_HIGH = {
    "rate_limit_per_key": "100000000/minute;10000000/second",
    "rate_limit_per_account": "100000000/minute",
    "rate_limit_per_ip": "100000000/minute",
    "rate_limit_per_recipient": "100000000/hour",
}


class _Bench:
    def __init__(self, folder: Path, redis_url: str | None, prefix: str, daily_cap: bool):
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            data_dir=folder,
            master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
            redis_url=redis_url,
            redis_key_prefix=prefix,
            daily_cap=10**9 if daily_cap else 0,  # the cap is on by default: off unless asked
            **_HIGH,
        )
        self.runtime = Runtime.open(settings)
        first = ensure_default_account(self.runtime)
        assert first is not None
        account_id = first.record["account_id"]
        self.app = create_app(self.runtime)
        self.principal = Principal(first.record["id"], account_id, "test", frozenset(SCOPES), None)
        self.pre = self.app.state.pre_auth_hooks[-1]
        self.auth = self.app.state.auth_hooks[-1]
        self.precheck = self.app.state.send_prechecks[-1]
        now = self.runtime.now()
        self.commands = [
            build_command(
                to=f"+2567015{n:05d}",
                message="Hello",
                sender=None,
                callback_url=None,
                scheduled_for=None,
                message_type="transactional",
                idempotency_key=None,
                now=now,
            )
            for n in range(1000)
        ]

    def request(self, n: int) -> Request:
        scope: dict[str, Any] = {
            "type": "http",
            "method": "POST",
            "path": "/api/v1/messages/sms",
            "headers": [],
            "client": (f"198.51.{n % 200}.{n % 250}", 40000),
            "app": self.app,
            "state": {},
        }
        return Request(scope)

    async def one(self, n: int) -> None:
        request = self.request(n)
        await self.pre(request)
        await self.auth(request, self.principal, None)
        await self.precheck(request, self.principal, self.commands[n % 1000])

    async def close(self) -> None:
        for hook in self.app.state.shutdown_hooks:
            await hook()
        self.runtime.close()


async def _measure(label: str, redis_url: str | None, requests: int, daily_cap: bool) -> float:
    prefix = f"msgine-bench-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory() as folder:
        bench = _Bench(Path(folder), redis_url, prefix, daily_cap)
        try:
            for n in range(min(500, requests)):  # warm-up: connections, caches
                await bench.one(n)
            started, cpu_started = time.perf_counter(), time.process_time()
            for n in range(requests):
                await bench.one(n)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            if bench.app.state.rate_limiter.degraded:
                print(f"{label}: Redis did not answer; figures would be for the memory stand-in")
                return float("nan")
        finally:
            await bench.close()
            if redis_url:
                _delete_prefix(redis_url, prefix)
    per_request = cpu / requests
    print(
        f"{label:>6}: {per_request * 1e6:8.1f} us CPU/request "
        f"({elapsed / requests * 1e6:8.1f} us wall), {requests / elapsed:9.0f} requests/s"
    )
    return per_request


def _delete_prefix(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def _share(per_request: float, send_rate: float) -> float:
    """Percent of throughput the checks take on a path doing `send_rate` requests/s: the
    rate without them would be 1 / (1/send_rate - per_request)."""
    return 100 * per_request * send_rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--redis-requests", type=int, default=3000)
    parser.add_argument("--daily-cap", action="store_true", help="give the account a daily cap")
    parser.add_argument(
        "--send-rate",
        type=float,
        action="append",
        default=[],
        help="send path requests/s (repeatable)",
    )
    args = parser.parse_args()

    results = {"memory": await _measure("memory", None, args.requests, args.daily_cap)}
    if not args.no_redis:
        results["redis"] = await _measure(
            "redis", args.redis_url, args.redis_requests, args.daily_cap
        )
    for rate in args.send_rate:
        for label, per_request in results.items():
            print(
                f"{label:>6}: {_share(per_request, rate):5.1f}% of a send path doing "
                f"{rate:.0f} requests/s (goal for memory: under 5%)"
            )


if __name__ == "__main__":
    asyncio.run(main())
