"""Fuzzing what receivers and the gateway parse from others: webhook deliveries (SDK) and
webhook URLs (the SSRF policy).

``verify`` may only return the event or raise ``WebhookVerificationError``; whatever the gateway
signs, it verifies; the URL policy may only return a checked target or raise a ``DomainError``,
and a target it accepts never reaches a non-public address, also through an embedded IPv4.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from fuzz_support import attempt, fuzz
from hypothesis import given
from hypothesis import strategies as st

from msgine.server.errors import DomainError
from msgine.server.webhooks import UrlPolicy, check_url_syntax, resolve_and_check
from msgine.server.webhooks._urlpolicy import address_refusal_reason, embedded_ipv4
from msgine.webhooks import (
    MemoryDedupeStore,
    WebhookVerificationError,
    encode_body,
    generate_secret,
    signature_headers,
    verify,
)

NOW = 1_750_000_000
SECRET = generate_secret()
NEW_SECRET = generate_secret()
HEADER_NAMES = st.sampled_from(
    ["webhook-id", "webhook-timestamp", "webhook-signature", "x-msgine-signature", "Webhook-Id"]
)
HEADER_VALUES = st.one_of(
    st.text(max_size=120),
    st.just(str(NOW)),
    st.builds(lambda s: "v1," + s, st.text(alphabet="ABCabc0123+/=", max_size=60)),
    st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
)
HEADERS = st.one_of(
    st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4),
    st.lists(st.tuples(st.one_of(HEADER_NAMES, st.binary(max_size=20)), HEADER_VALUES), max_size=5),
    st.builds(lambda: 42),
)
PAYLOADS = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200),
    st.builds(lambda n: b"[" * n, st.integers(0, 50_000)),
    st.builds(lambda n: '{"a":' * n, st.integers(0, 5_000)),
)
SECRETS = st.one_of(
    st.just(SECRET),
    st.text(max_size=60),
    st.lists(st.text(max_size=40), max_size=3),
    st.builds(lambda: None),
)


@fuzz
@given(PAYLOADS, HEADERS, SECRETS, st.booleans())
def test_verify_raises_only_its_own_error(
    payload: Any, headers: Any, secret: Any, legacy: bool
) -> None:
    options: dict[str, Any] = {"now": NOW}
    if legacy:
        options.update(allow_legacy=True, dedupe=MemoryDedupeStore())
    event, error = attempt(WebhookVerificationError, verify, payload, headers, secret, **options)
    if error is not None:
        assert getattr(error, "reason", None)
        return
    assert isinstance(event, dict)


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.text(max_size=30),
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(alphabet="abXY_é✓", min_size=1, max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)


@fuzz
@given(st.dictionaries(st.text(alphabet="abcdefXYZ", min_size=1, max_size=10), JSON, max_size=6))
def test_what_the_gateway_signs_verifies_on_both_schemes(data: dict[str, Any]) -> None:
    event = {**data, "id": "evt_fuzz", "timestamp": "2025-06-15T15:06:40Z"}
    body = encode_body(event)
    old, new = SECRET, NEW_SECRET
    headers = signature_headers([new, old], "evt_fuzz", NOW, body)
    for held in (old, new):
        assert verify(body, headers, held, now=NOW) == event
    hex_only = {"x-msgine-signature": headers["x-msgine-signature"]}
    legacy = {"allow_legacy": True, "dedupe": MemoryDedupeStore(), "now": NOW}
    assert verify(body, hex_only, old, **legacy) == event


URLISH = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["https", "http", "HTTPS", "ftp", "", "https:"]),
    st.one_of(
        st.from_regex(r"[a-z0-9.\-]{0,30}", fullmatch=True),
        st.ip_addresses().map(lambda a: f"[{a}]" if a.version == 6 else str(a)),
        st.text(max_size=20),
    ),
    st.one_of(st.just(""), st.integers(-5, 70_000).map(lambda p: f":{p}"), st.text(max_size=5)),
    st.text(max_size=30),
)


@fuzz
@given(st.one_of(URLISH, st.text(max_size=200)))
def test_url_syntax_refuses_with_domain_errors_and_normalises_stably(url: str) -> None:
    normal, error = attempt(DomainError, check_url_syntax, url)
    if error is not None:
        assert getattr(error, "code", None) in {"invalid_request", "insecure_callback_url"}
        return
    assert normal.startswith("https://")
    assert check_url_syntax(normal) == normal


LOOP = asyncio.new_event_loop()  # one loop for every example: a new one each is slow


class Answers:
    def __init__(self, answers: list[str]) -> None:
        self.answers = answers

    async def __call__(self, host: str, port: int) -> list[str]:
        return self.answers


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Independent of the policy's own tables: Python's view, applied to what is embedded."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return False
        embedded = embedded_ipv4(address)
        if embedded:  # NAT64, 6to4...: where the connection really goes
            return all(_public(v4) for v4 in embedded)
    if address.is_loopback or address.is_link_local or address.is_multicast:
        return False
    if address.is_unspecified or address.is_private or address.is_reserved:
        return False
    return address.is_global


@fuzz
@given(
    st.lists(st.ip_addresses(), min_size=1, max_size=3),
    st.booleans(),
    st.sampled_from([443, 8443, 22, 80, 1024, 65535]),
)
def test_an_accepted_target_only_reaches_public_addresses(
    addresses: list[Any], allow_private: bool, port: int
) -> None:
    policy = UrlPolicy(allow_private=allow_private, resolver=Answers([str(a) for a in addresses]))
    check = resolve_and_check(f"https://hooks.example:{port}/x", policy)
    target, error = attempt(DomainError, LOOP.run_until_complete, check)
    if error is not None:
        assert getattr(error, "code", None) in {"invalid_request", "insecure_callback_url"}
        return
    assert policy.allows_port(target.port)
    for text in target.addresses:
        address = ipaddress.ip_address(text)
        if not allow_private:
            assert _public(address), text
        assert address_refusal_reason(address) in {None, "private_address"}
