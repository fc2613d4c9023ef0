"""Receive MsGine webhooks with FastAPI: verified, deduplicated, allow-listed.

Local development (from the repository root, next to a gateway's data directory):

    export MSGINE_WEBHOOK_SECRET=$(msgine webhooks listen --print-secret)
    uvicorn examples.fastapi_receiver:app --port 9000 &
    msgine webhooks listen --forward-to http://127.0.0.1:9000/webhooks/msgine
    msgine webhooks trigger message.delivered      # in another terminal

In production: MSGINE_WEBHOOK_SECRET is the endpoint's secret (POST /api/v1/webhooks, shown
once) and MSGINE_EGRESS_IPS the gateway's addresses (GET /api/v1/meta/ips); the default,
127.0.0.1/32, is what ``listen`` forwards from.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from fastapi import Depends, FastAPI

from msgine.webhooks import IpAllowList, MemoryDedupeStore, from_env
from msgine.webhooks.fastapi import webhook_dependency

logging.basicConfig(level=logging.INFO)
app = FastAPI()
receive = webhook_dependency(
    secret=from_env("MSGINE_WEBHOOK_SECRET"),  # re-read every 5 minutes: rotation needs no restart
    dedupe=MemoryDedupeStore(),  # RedisDedupeStore / SqlDedupeStore when running several workers
    allow_list=IpAllowList(os.environ.get("MSGINE_EGRESS_IPS", "127.0.0.1/32")),
)


@app.post("/webhooks/msgine")
def msgine_webhook(event: dict[str, Any] = Depends(receive)) -> dict[str, str]:
    # Runs once per event id; raising here makes MsGine retry later.
    logging.getLogger("receiver").info("event %s: %s", event["id"], event["event"])
    return {"status": "ok"}
