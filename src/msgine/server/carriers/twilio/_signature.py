"""``X-Twilio-Signature``: base64 HMAC-SHA1, keyed by the account's Auth Token, of the full URL
Twilio requested followed by every POST parameter's name and value, sorted by name (a repeated
name's values sorted too).

Our own implementation (the tests hold it to the ``twilio`` package's ``RequestValidator``).
Like that validator, the URL is tried as given, with its scheme's default port and without
one, because Twilio does not sign the port consistently. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from urllib.parse import SplitResult, urlsplit

_DEFAULT_PORTS = {"https": 443, "http": 80}


def signature(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """The signature Twilio sends for a form POST of ``params`` to ``url``."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    data = url + "".join(
        name + value for name in sorted(by_name) for value in sorted(by_name[name])
    )
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> Iterable[str]:
    """The URL as given, with its default port, and without a port."""
    yield url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if parts.port is None:
        port = _DEFAULT_PORTS.get(parts.scheme)
        if port is not None:
            yield _with_netloc(parts, f"{prefix}{host}:{port}")
    else:
        yield _with_netloc(parts, f"{prefix}{host}")


def _with_netloc(parts: SplitResult, netloc: str) -> str:
    return parts._replace(netloc=netloc).geturl()


def verify(
    auth_tokens: Sequence[str], url: str, params: Sequence[tuple[str, str]], presented: str
) -> bool:
    """Whether ``presented`` is Twilio's signature of this request under one of the tokens
    (the current one, and the previous one during a rotation)."""
    given = presented.strip().encode()
    if not given:
        return False
    matched = False
    for token in auth_tokens:
        for candidate in _url_variants(url):
            expected = signature(token, candidate, params).encode()
            # Every candidate is compared, so the time taken does not say which one matched.
            matched |= hmac.compare_digest(expected, given)
    return matched
