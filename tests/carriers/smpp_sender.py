"""A worker process for the throughput-cap test: submits COUNT messages through an SMPP carrier
as fast as the shared throttle lets it. Usage:
python smpp_sender.py PORT COUNT RATE (redis URL | database URL | memory) KEY
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import redis.asyncio

from msgine.server.carriers import InboundMessage, Receipt, SubmitRequest
from msgine.server.carriers._throttle import shared_throttle
from msgine.server.carriers.smpp import SmppCarrier, SmppCredentials, SmppOptions
from msgine.server.storage import Database


class _Ignore:
    async def receipt(self, carrier: str, receipt: Receipt) -> None:
        return None

    async def inbound(self, carrier: str, message: InboundMessage) -> None:
        return None


async def main(port: int, count: int, rate: float, url: str, key: str) -> None:
    db: Database | None = None
    client: Any = None
    if url.startswith("redis"):
        client = redis.asyncio.Redis.from_url(url)
    elif url != "memory":
        db = Database(url)
    throttle = shared_throttle("smsc1", rate, redis_client=client, redis_prefix=key, db=db)
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


if __name__ == "__main__":
    port, count, rate, url, key = sys.argv[1:6]
    asyncio.run(main(int(port), int(count), float(rate), url, key))
