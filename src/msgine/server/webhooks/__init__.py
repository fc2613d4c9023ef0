"""Webhooks: endpoints, signed delivery with retries, SSRF guard."""

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
    "UrlPolicy",
    "check_url_syntax",
    "checked_url",
    "parse_port_ranges",
    "resolve_and_check",
]
