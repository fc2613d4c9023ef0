"""Webhooks: endpoints, signed delivery with retries, SSRF guard, local listen sessions."""

from msgine.server.webhooks._dispatch import Dispatcher
from msgine.server.webhooks._dispatch import background_tasks as delivery_tasks
from msgine.server.webhooks._endpoints import (
    DEFAULT_GRACE_HOURS,
    MAX_DELIVERY_PAGE,
    MAX_GRACE_HOURS,
    NewSecret,
    create_endpoint,
    delete_endpoint,
    delivery_view,
    endpoint_view,
    get_endpoint,
    list_deliveries,
    list_endpoints,
    normalise_events,
    replay_delivery,
    rotate_account_secret,
    rotate_endpoint_secret,
    update_endpoint,
)
from msgine.server.webhooks._inspect import (
    DELIVERY_HEADERS,
    message_deliveries,
    redact,
    request_excerpts,
    send_test_event,
)
from msgine.server.webhooks._listen import (
    EventFollower,
    ListenSession,
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
    "DEFAULT_GRACE_HOURS",
    "DELIVERY_HEADERS",
    "MAX_DELIVERY_PAGE",
    "MAX_GRACE_HOURS",
    "Dispatcher",
    "EventFollower",
    "ListenSession",
    "NewSecret",
    "UrlPolicy",
    "build_ssl_context",
    "check_forward_url",
    "check_url_syntax",
    "checked_url",
    "create_endpoint",
    "delete_endpoint",
    "delivery_tasks",
    "delivery_view",
    "endpoint_view",
    "follow",
    "forward",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "listen_secret",
    "message_deliveries",
    "normalise_events",
    "parse_port_ranges",
    "redact",
    "replay_delivery",
    "request_excerpts",
    "resolve_and_check",
    "rotate_account_secret",
    "rotate_endpoint_secret",
    "send_test_event",
    "trigger_test_event",
    "update_endpoint",
]
