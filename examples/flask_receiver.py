"""Receive MsGine webhooks with Flask: verified, deduplicated, allow-listed.

export MSGINE_WEBHOOK_SECRET=whsec_...    # from POST /api/v1/webhooks (shown once)
export MSGINE_EGRESS_IPS=127.0.0.1/32     # from GET /api/v1/meta/ips
flask --app examples/flask_receiver.py run --port 9000
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
