"""Webhooks: endpoints, signed delivery with retries, SSRF guard, local listen sessions."""

from msgine.server.webhooks._listen import (
    EventFollower,
    check_forward_url,
    follow,
    forward,
    listen_secret,
)
from msgine.server.webhooks._listen import trigger as trigger_test_event
from msgine.server.webhooks._transport import build_ssl_context
from msgine.server.webhooks._urlpolicy import (
    DEFAULT_ALLOWED_PORTS,
    UrlPolicy,
    check_url_syntax,
    checked_url,
    parse_port_ranges,
    resolve_and_check,
)

__all__ = [
    "DEFAULT_ALLOWED_PORTS",
    "EventFollower",
    "UrlPolicy",
    "build_ssl_context",
    "check_forward_url",
    "check_url_syntax",
    "checked_url",
    "follow",
    "forward",
    "listen_secret",
    "parse_port_ranges",
    "resolve_and_check",
    "trigger_test_event",
]
