"""Webhooks: endpoints, signed delivery with retries, SSRF guard, local listen sessions."""

from msgine.server.webhooks._listen import (
    EventFollower,
    check_forward_url,
    follow,
    forward,
    listen_secret,
)
from msgine.server.webhooks._listen import trigger as trigger_test_event

__all__ = [
    "EventFollower",
    "check_forward_url",
    "follow",
    "forward",
    "listen_secret",
    "trigger_test_event",
]
