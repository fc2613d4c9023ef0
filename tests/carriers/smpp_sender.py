"""A worker process for the throughput-cap test: submits COUNT messages through an SMPP carrier
as fast as the shared throttle lets it. Usage:
python smpp_sender.py PORT COUNT RATE (redis URL | database URL | memory) KEY

Prints one JSON line: the slots the shared schedule gave this process, each as the wall-clock
bounds of its start (read before and after asking, so the test needs no clock of the schedule's
own), and the wall-clock time each message was released to the carrier.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import redis.asyncio

from msgine.server.carriers import InboundMessage, Receipt, SubmitRequest
from msgine.server.carriers._throttle import Schedule, shared_throttle
from msgine.server.carriers.smpp import SmppCarrier, SmppCredentials, SmppOptions
from msgine.server.storage import Database


class _Ignore:
    async def receipt(self, carrier: str, receipt: Receipt) -> None:
        return None

    async def inbound(self, carrier: str, message: InboundMessage) -> None:
        return None


class _Recorded:
    """The shared schedule, with each reservation's start noted in wall-clock bounds."""

    def __init__(self, schedule: Schedule) -> None:
        self._schedule = schedule
        self.reservations: list[dict[str, float]] = []

    async def reserve(self, count: int) -> float:
        before = time.time()
        wait = await self._schedule.reserve(count)
        after = time.time()
        self.reservations.append(
            {"earliest": before + wait, "latest": after + wait, "count": count}
        )
        return wait

    async def aclose(self) -> None:
        await self._schedule.aclose()


async def main(port: int, count: int, rate: float, url: str, key: str) -> None:
    db: Database | None = None
    client: Any = None
    if url.startswith("redis"):
        client = redis.asyncio.Redis.from_url(url)
    elif url != "memory":
        db = Database(url)
    throttle = shared_throttle("smsc1", rate, redis_client=client, redis_prefix=key, db=db)
    recorded = _Recorded(throttle._schedule)
    throttle._schedule = recorded
    released: list[float] = []
    acquire = throttle.acquire

    async def acquire_noting_release(count: int = 1) -> None:
        await acquire(count)
        released.append(time.time())

    throttle.acquire = acquire_noting_release  # type: ignore[method-assign]
    carrier = SmppCarrier(
        "smsc1",
        SmppOptions(host="127.0.0.1", port=port, window=50, throughput=rate),
        SmppCredentials(system_id="msgine", password="s3cret"),
        throttle=throttle,
    )
    await carrier.start(_Ignore())
    try:
        requests = [
            SubmitRequest(f"{key}-{i}", "+256701521269", "MsGine", "hi", "live")
            for i in range(count)
        ]
        results = await asyncio.gather(*(carrier.submit(r) for r in requests))
        assert all(result.accepted for result in results), results
    finally:
        await carrier.stop()
        if client is not None:
            await client.aclose()
        if db is not None:
            db.close()
    print(json.dumps({"reservations": recorded.reservations, "released": released}))


if __name__ == "__main__":
    port, count, rate, url, key = sys.argv[1:6]
    asyncio.run(main(int(port), int(count), float(rate), url, key))
