"""Routes: MsGine's other channels (email, push), which this gateway does not carry.

MsGine's official SDKs call ``/developers/email``, ``/developers/push`` and paths below them
(history, devices). Without these routes the message routes' ``{message_id}`` parameter caught
the one-segment paths and answered 405, as if the path existed with other methods. Every
method on each path here, and on ``/messages/email`` and ``/messages/push``, answers 404
``not_found`` saying the gateway sends SMS only. The router is mounted before the message
routes, so these paths never reach them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from starlette.responses import Response

from msgine.server.errors import NotFound

OTHER_CHANNELS = ("email", "push")
PREFIXES = ("/developers", "/messages")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

router = APIRouter()


def _sms_only(channel: str) -> Callable[[], Awaitable[Response]]:
    async def answer() -> Response:
        raise NotFound(
            f"This gateway sends SMS only: {channel} messages are not available here.",
            details={"channel": channel, "channels": ["sms"]},
        )

    return answer


for _prefix in PREFIXES:
    for _channel in OTHER_CHANNELS:
        for _path in (f"{_prefix}/{_channel}", f"{_prefix}/{_channel}/{{rest:path}}"):
            router.add_api_route(
                _path, _sms_only(_channel), methods=METHODS, include_in_schema=False
            )
