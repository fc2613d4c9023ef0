"""Send several messages concurrently with the async client.

export MSGINE_API_KEY=... MSGINE_BASE_URL=http://127.0.0.1:8080/api/v1
python examples/async_send.py +256701521269 +256701521270
"""

from __future__ import annotations

import asyncio
import sys

from msgine import AsyncMsGineClient, Message


async def main(numbers: list[str]) -> None:
    async with AsyncMsGineClient() as client:
        sends = [client.sms.send(number, "Your code is 123456") for number in numbers]
        results: list[Message | BaseException] = await asyncio.gather(
            *sends, return_exceptions=True
        )
        for result in results:
            if isinstance(result, Message):
                print(f"sent {result.id}: {result.status}")
            else:
                print(f"failed: {result}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["+256701521269"]))
