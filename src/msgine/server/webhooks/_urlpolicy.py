"""Webhook URL policy: the SSRF guard applied at registration and before every delivery.

A URL is accepted only if it is https and every address its host resolves to is a public unicast
address. The delivery transport then connects to exactly those checked addresses, so a DNS answer
that changes between the check and the connection (DNS rebinding) cannot redirect a delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import httpx

from msgine.server.errors import InsecureCallbackUrl, InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Maps (host, port) to the IP address strings the host resolves to."""

MAX_URL_LENGTH: Final = 2048
HTTPS_PORT: Final = 443

# Reasons reported in error details and by the transport; stable strings, no addresses in them.
REASON_PRIVATE: Final = "private_address"
REASON_RESERVED: Final = "reserved_address"
REASON_MAPPED: Final = "ipv4_mapped_address"
REASON_METADATA: Final = "metadata_address"
# Only private-like destinations can be opened up (local development and tests).
_ALLOWED_WITH_PRIVATE: Final = frozenset({REASON_PRIVATE})

_METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean instance metadata
        "169.254.169.253",  # AWS VPC DNS resolver
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.170.23",  # AWS EKS pod identity agent
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure wire server (a public address, so is_global misses it)
        "192.0.0.192",  # Oracle Cloud metadata
        "fd00:ec2::254",  # AWS metadata over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity agent over IPv6
    )
)
_METADATA_NAMES: Final = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)

# Never a valid unicast destination, whatever the policy: 0.0.0.0 even reaches local services.
_ALWAYS_REFUSED_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "224.0.0.0/4",
        "240.0.0.0/4",  # includes 255.255.255.255
        "::/128",
        "ff00::/8",
    )
)
# Spelled out rather than trusting is_global alone, whose tables differ between Python releases.
_PRIVATE_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "::1/128",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
    )
)
_NAT64_NETWORKS: Final = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOSTNAME_RE: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_NUMERIC_LABEL_RE: Final = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system's resolver, off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class UrlPolicy:
    """What webhook destinations are acceptable; one instance per process configuration."""

    allow_private: bool = False
    resolver: Resolver = field(default=system_resolver, repr=False)
    resolve_timeout: float = 5.0


@dataclass(frozen=True)
class ResolvedTarget:
    """A checked URL and the only addresses a delivery to it may connect to."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


def check_url_syntax(url: str) -> str:
    """Validate a webhook URL without any network access and return its normalised form."""
    return _normalise(_parse(url))


async def resolve_and_check(url: str, policy: UrlPolicy) -> ResolvedTarget:
    """Check a URL and every address its host resolves to; refuse if any one is disallowed.

    All addresses must pass, not just one: the connection may use any of them.
    """
    parsed = _parse(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or HTTPS_PORT
    literal = _ip_literal(host)
    if literal is None:
        _check_name(host.rstrip("."), policy)
        addresses = await _resolve(host, port, policy)
    else:
        addresses = (literal,)
    for address in addresses:
        _check_address(address, policy)
    return ResolvedTarget(
        url=_normalise(parsed),
        host=host,
        port=port,
        addresses=tuple(str(a) for a in addresses),
    )


def address_refusal_reason(address: IPAddress) -> str | None:
    """Why an address is not a public unicast destination, or None if it is one."""
    address = _strip_scope(address)
    if address in _METADATA_ADDRESSES:
        return REASON_METADATA
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None or (address in _IPV4_COMPATIBLE and int(address) > 1):
            return REASON_MAPPED
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            embedded_reason = address_refusal_reason(embedded)
            if embedded_reason is not None:
                return embedded_reason
            if address.teredo is None:  # NAT64 and 6to4 reach the public IPv4 they embed
                return None
    if any(address in net for net in _ALWAYS_REFUSED_NETWORKS):
        return REASON_RESERVED
    if any(address in net for net in _PRIVATE_NETWORKS) or not address.is_global:
        return REASON_PRIVATE
    return None


def _parse(url: str) -> httpx.URL:
    if not url:
        raise InvalidRequest("Webhook URL is required.", details={"reason": "missing_url"})
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(
            f"Webhook URL must be at most {MAX_URL_LENGTH} characters.",
            details={"reason": "url_too_long"},
        )
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise _malformed()
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, UnicodeError):
        raise _malformed() from None
    if not parsed.scheme:
        raise _malformed()
    if parsed.scheme != "https":
        raise InsecureCallbackUrl(
            "Webhook URLs must use https. " + LOCAL_DEVELOPMENT,
            details={"reason": "insecure_scheme"},
        )
    if parsed.userinfo:
        raise InvalidRequest(
            "Webhook URLs must not contain credentials.", details={"reason": "userinfo"}
        )
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise _malformed()
    _check_host_syntax(parsed.raw_host.decode("ascii"))
    return parsed


def _normalise(parsed: httpx.URL) -> str:
    port = None if parsed.port == HTTPS_PORT else parsed.port
    return str(parsed.copy_with(fragment=None, port=port))


def _check_host_syntax(host: str) -> None:
    if not host:
        raise InvalidRequest("Webhook URL must have a host.", details={"reason": "missing_host"})
    if _ip_literal(host) is not None:
        return
    if "%" in host or len(host) > 253 or not _HOSTNAME_RE.fullmatch(host):
        raise _malformed()
    # "127.1" or "0x7f.1" are IPv4 in disguise to some parsers; a real TLD is never numeric.
    if _NUMERIC_LABEL_RE.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
        raise _malformed()


def _ip_literal(host: str) -> IPAddress | None:
    if "%" in host:  # IPv6 zone identifiers select a local interface: never acceptable
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check_name(name: str, policy: UrlPolicy) -> None:
    if name in _METADATA_NAMES:
        raise _refused(REASON_METADATA)
    if not policy.allow_private and (name == "localhost" or name.endswith(".localhost")):
        raise _refused(REASON_PRIVATE)


async def _resolve(host: str, port: int, policy: UrlPolicy) -> tuple[IPAddress, ...]:
    try:
        async with asyncio.timeout(policy.resolve_timeout):
            answers = await policy.resolver(host, port)
    except (OSError, TimeoutError, UnicodeError):
        answers = []
    addresses: dict[IPAddress, None] = {}
    for answer in answers:
        try:
            addresses[ipaddress.ip_address(answer)] = None
        except ValueError:
            raise _refused(REASON_RESERVED) from None
    if not addresses:
        raise InvalidRequest(
            "Webhook URL host could not be resolved.", details={"reason": "unresolvable_host"}
        )
    return tuple(addresses)


def _check_address(address: IPAddress, policy: UrlPolicy) -> None:
    reason = address_refusal_reason(address)
    if reason is None or (policy.allow_private and reason in _ALLOWED_WITH_PRIVATE):
        return
    raise _refused(reason)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if any(address in net for net in _NAT64_NETWORKS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _strip_scope(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(int(address))
    return address


#: Appended to refusals a developer meets first: how to reach a receiver on their own machine.
LOCAL_DEVELOPMENT = (
    "To develop a receiver locally, run 'msgine webhooks listen --forward-to "
    "http://localhost:PORT/PATH' (test-mode events, plain http allowed); an operator can allow "
    "private addresses with MSGINE_WEBHOOK_ALLOW_PRIVATE=true and trust a private CA with "
    "MSGINE_WEBHOOK_CA_BUNDLE (see docs/webhooks-receiving.md)."
)


def _malformed() -> InvalidRequest:
    return InvalidRequest("Webhook URL is malformed.", details={"reason": "malformed_url"})


def _refused(reason: str) -> InsecureCallbackUrl:
    if reason == REASON_METADATA:
        message = "Webhook URL points to a cloud metadata address."
    else:
        message = "Webhook URL must resolve only to public internet addresses. " + LOCAL_DEVELOPMENT
    return InsecureCallbackUrl(message, details={"reason": reason})
