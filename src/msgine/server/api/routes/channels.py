"""MsGine's other channels (email, push), which this gateway does not carry.

MsGine's official SDKs call ``/developers/email``, ``/developers/push`` and paths below them
(history, devices). The message routes' ``{message_id}`` parameter caught the one-segment
paths, so they answered 405 (or looked up a message named "email"), as if they existed here
with other methods. Every method on those paths, on ``/messages/email``, ``/messages/push``
and below, now answers 404 ``not_found`` saying the gateway sends SMS only. They are refused
by ``DirectRoutes`` before routing: they are not operations of this API, so the OpenAPI
document (which lists exactly what is served) does not name them.
"""

from __future__ import annotations

import re

from msgine.server.api.routes import API_PREFIX
from msgine.server.errors import NotFound

OTHER_CHANNELS = ("email", "push")
_PATHS = re.compile(
    rf"{re.escape(API_PREFIX)}/(?:developers|messages)/({'|'.join(OTHER_CHANNELS)})(?:/.*)?"
)


def refusal(path: str) -> NotFound | None:
    """The answer to a request for another channel's path; None for every other path."""
    found = _PATHS.fullmatch(path)
    if found is None:
        return None
    channel = found.group(1)
    return NotFound(
        f"This gateway sends SMS only: {channel} messages are not available here.",
        details={"channel": channel, "channels": ["sms"]},
    )
