"""Cost of MsGine's rate-limit checks per request, with memory and with Redis storage.

One request's checks as the send path makes them: address lock-out, per-address limit, key and
account limits (consumed together), one recipient limit and the daily cap. With
`--send-rate N` it also prints the throughput a send path doing N requests/s would lose.

    python bench/ratelimit_overhead.py [--redis-url redis://127.0.0.1:6379/0] [--send-rate 3700]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import redis

from msgine.server.ratelimit import RateLimiter, RateLimitPolicy, opaque_identity

# Limits high enough that nothing is refused: refusals are cheaper and would flatter the figures.
_HIGH = "100000000/minute;10000000/second"
_POLICY = RateLimitPolicy(
    per_key=_HIGH, per_account=_HIGH, per_address=_HIGH, per_recipient="100000000/hour"
)
_CHECKS_PER_REQUEST = 5  # calls into the limiter per request, as in `_one_request`


async def _one_request(limiter: RateLimiter, n: int, recipient_key: bytes) -> None:
    address = f"198.51.{n % 200}.{n % 250}"
    await limiter.is_locked_out(address)
    await limiter.hit("ip", address, _POLICY.per_address)
    await limiter.hit_many(
        [
            ("key", f"key_{n % 50}", _POLICY.per_key),
            ("account", f"acc_{n % 10}", _POLICY.per_account),
        ]
    )
    recipient = opaque_identity(f"+2567015{n % 100000:05d}", recipient_key)
    await limiter.hit("recipient", recipient, _POLICY.per_recipient)
    await limiter.hit("daily", f"acc_{n % 10}", "100000000/day")


async def _measure(label: str, redis_url: str | None, requests: int) -> float:
    prefix = f"msgine-bench-{uuid.uuid4().hex}"
    limiter = RateLimiter(redis_url, key_prefix=prefix)
    recipient_key = b"bench-blind-index-key-0123456789"
    try:
        for n in range(min(200, requests)):  # warm-up: connections, parsed-limit cache
            await _one_request(limiter, n, recipient_key)
        started = time.perf_counter()
        for n in range(requests):
            await _one_request(limiter, n, recipient_key)
        elapsed = time.perf_counter() - started
        if limiter.degraded:
            print(f"{label}: Redis did not answer; figures would be for the memory stand-in")
            return float("nan")
    finally:
        await limiter.aclose()
        if redis_url:
            _delete_prefix(redis_url, prefix)
    per_request = elapsed / requests
    print(
        f"{label:>6}: {per_request * 1e6:8.1f} us/request "
        f"({per_request / _CHECKS_PER_REQUEST * 1e6:6.1f} us/check), "
        f"{requests / elapsed:9.0f} requests/s, "
        f"{requests * _CHECKS_PER_REQUEST / elapsed:9.0f} checks/s"
    )
    return per_request


def _delete_prefix(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def _share(per_request: float, send_rate: float) -> float:
    """Percent of throughput lost by adding `per_request` seconds to a `send_rate`/s path."""
    added = per_request * send_rate
    return 100 * added / (1 + added)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--redis-requests", type=int, default=2000)
    parser.add_argument("--send-rate", type=float, help="send path requests/s without limits")
    args = parser.parse_args()

    results = {"memory": await _measure("memory", None, args.requests)}
    if not args.no_redis:
        results["redis"] = await _measure("redis", args.redis_url, args.redis_requests)
    if args.send_rate:
        for label, per_request in results.items():
            print(
                f"{label:>6}: {_share(per_request, args.send_rate):5.1f}% of a send path "
                f"doing {args.send_rate:.0f} requests/s (goal for memory: under 5%)"
            )


if __name__ == "__main__":
    asyncio.run(main())
