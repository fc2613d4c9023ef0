"""Webhook verification throughput: msgine.webhooks.verify against standardwebhooks' own verify.

Both verify the same signed deliveries (same bodies, headers and secret, within tolerance) and
parse the JSON body. Run: ``python bench/verify_speed.py [--n 50000] [--size 300]``.
Goal: ``verify`` at least as fast as ``standardwebhooks``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from standardwebhooks import Webhook

from msgine.webhooks import encode_body, generate_secret, signature_headers, verify


def deliveries(secret: str, count: int, size: int) -> list[tuple[bytes, dict[str, str]]]:
    now = int(time.time())
    out = []
    for n in range(count):
        event = {
            "id": f"evt_{n}",
            "event": "message.delivered",
            "messageId": f"msg_{n}",
            "data": {},
        }
        padding = max(0, size - len(encode_body(event)) - 10)
        event["data"] = {"p": "x" * padding}
        body = encode_body(event)
        out.append((body, signature_headers([secret], f"evt_{n}", now, body)))
    return out


def rate(
    name: str,
    fn: Callable[[bytes, dict[str, str]], Any],
    items: list[tuple[bytes, dict[str, str]]],
    n: int,
) -> float:
    for body, headers in items[:100]:
        fn(body, headers)  # warm up
    started = time.perf_counter()
    for i in range(n):
        body, headers = items[i % len(items)]
        fn(body, headers)
    per_second = n / (time.perf_counter() - started)
    print(f"{name:<26} {per_second:>12,.0f} verifies/s")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=300, help="approximate body size in bytes")
    args = parser.parse_args()
    secret = generate_secret()
    items = deliveries(secret, 1000, args.size)
    webhook = Webhook(secret)
    assert all(verify(b, h, secret) == webhook.verify(b, h) for b, h in items[:10])
    print(f"{args.n:,} verifications of ~{args.size}-byte bodies")
    theirs = rate("standardwebhooks.verify", webhook.verify, items, args.n)
    ours = rate("msgine.webhooks.verify", lambda b, h: verify(b, h, secret), items, args.n)
    print(f"ratio: {ours / theirs:.2f}x ({'goal met' if ours >= theirs else 'goal NOT met'})")


if __name__ == "__main__":
    main()
