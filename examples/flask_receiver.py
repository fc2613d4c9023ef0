"""Receive MsGine webhooks with Flask: verified, deduplicated, allow-listed.

Local development (from the repository root, next to a gateway's data directory):

    export MSGINE_WEBHOOK_SECRET=$(msgine webhooks listen --print-secret)
    flask --app examples/flask_receiver.py run --port 9000 &
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

from flask import Flask

from msgine.webhooks import IpAllowList, MemoryDedupeStore, from_env
from msgine.webhooks.flask import webhook_endpoint

logging.basicConfig(level=logging.INFO)
app = Flask(__name__)


@app.post("/webhooks/msgine")
@webhook_endpoint(
    secret=from_env("MSGINE_WEBHOOK_SECRET"),
    dedupe=MemoryDedupeStore(),
    allow_list=IpAllowList(os.environ.get("MSGINE_EGRESS_IPS", "127.0.0.1/32")),
)
def msgine_webhook(event: dict[str, Any]) -> tuple[str, int]:
    logging.getLogger("receiver").info("event %s: %s", event["id"], event["event"])
    return "", 204
