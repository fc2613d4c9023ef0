"""Webhook URL policy: the SSRF guard applied at registration and before every delivery.

A URL is accepted only if it is https and every address its host resolves to is a public unicast
address. The delivery transport then connects to exactly those checked addresses, so a DNS answer
that changes between the check and the connection (DNS rebinding) cannot redirect a delivery.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from msgine.server.errors import InsecureCallbackUrl, InvalidRequest
from msgine.server.logging import security_event

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
REASON_PORT: Final = "port_not_allowed"
#: The ports a webhook may target unless the operator allows more (MSGINE_WEBHOOK_ALLOWED_PORTS):
#: HTTPS, and the unprivileged range. Below 1024 lie the well-known services (SSH, SMTP, DNS...)
#: a delivery must never be aimed at.
DEFAULT_ALLOWED_PORTS: Final = "443,1024-65535"
PortRanges = tuple[tuple[int, int], ...]
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
# Addresses that carry an IPv4 address inside them, and where (RFC 4291, 6052, 6145, 8215, 3056,
# 4380, 5214). Each is judged by the IPv4 address it embeds: a translator or a dual-stack socket
# sends the connection there.
_WELL_KNOWN_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_LOCAL_NAT64: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
# RFC 6052 section 2.2: where the IPv4 address sits for each prefix length (bits 64-71 are the
# reserved "u" octet and never hold any of it). A local-use prefix may be any of these lengths,
# so every position is checked.
_RFC6052_LENGTHS: Final = (48, 56, 64, 96)
# Mapped (::ffff:0:0/96), translated (::ffff:0:0:0/96, SIIT) and IPv4-compatible (::/96, less
# :: and ::1) addresses reach the IPv4 address itself: refused whatever it is.
_IPV4_IN_IPV6: Final = (
    ipaddress.IPv6Network("::ffff:0:0/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
    ipaddress.IPv6Network("::/96"),
)
_ISATAP_IDS: Final = (0x00005EFE, 0x02005EFE)  # interface ids ::0:5efe:w.x.y.z, ::200:5efe:...
# Global unicast IPv6 (RFC 4291): everything outside it is reserved by the IETF (::/8 less what is
# handled above, 100::/8, 4000::/3...) and never a webhook destination.
_GLOBAL_UNICAST: Final = ipaddress.IPv6Network("2000::/3")
# When several embedded addresses are refused, the most specific reason is reported.
_REASON_ORDER: Final = (REASON_METADATA, REASON_RESERVED, REASON_MAPPED, REASON_PRIVATE)

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOSTNAME_RE: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_NUMERIC_LABEL_RE: Final = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system's resolver, off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse_port_ranges(text: str) -> PortRanges:
    """``"443,1024-65535"`` as ((443, 443), (1024, 65535)); ``ValueError`` names what is wrong."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ValueError(f"not a port or port range: {part.strip()!r}") from None
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"ports are 1-65535, low-high: {part.strip()!r}")
        ranges.append((first, last))
    if not ranges:
        raise ValueError("at least one port is needed")
    return tuple(ranges)


@dataclass(frozen=True)
class UrlPolicy:
    """What webhook destinations are acceptable; one instance per process configuration."""

    allow_private: bool = False
    resolver: Resolver = field(default=system_resolver, repr=False)
    resolve_timeout: float = 5.0
    allowed_ports: PortRanges = ((HTTPS_PORT, HTTPS_PORT), (1024, 65535))  # = the default

    @classmethod
    def from_settings(cls, settings: Any) -> UrlPolicy:
        """The policy the operator configured (MSGINE_WEBHOOK_ALLOW_PRIVATE, _ALLOWED_PORTS)."""
        return _configured(bool(settings.webhook_allow_private), settings.webhook_allowed_ports)

    def allows_port(self, port: int) -> bool:
        return any(low <= port <= high for low, high in self.allowed_ports)


@dataclass(frozen=True)
class ResolvedTarget:
    """A checked URL and the only addresses a delivery to it may connect to."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


@functools.lru_cache(maxsize=8)
def _configured(allow_private: bool, ports: str) -> UrlPolicy:
    return UrlPolicy(allow_private=allow_private, allowed_ports=parse_port_ranges(ports))


async def checked_url(url: str, policy: UrlPolicy) -> str:
    """The normalised URL if the policy accepts it now; a refusal is also a security event.

    Registration and a send's ``callbackUrl`` resolve the host (not just the syntax), so a
    destination aimed at an internal address is refused up front; the dispatcher checks again
    before every delivery.
    """
    try:
        target = await resolve_and_check(url, policy)
    except InsecureCallbackUrl as exc:
        security_event("webhook_url_refused", reason=exc.details.get("reason"))
        raise
    return target.url


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
    if not policy.allows_port(port):
        raise InsecureCallbackUrl(
            "Webhook URLs may only use the ports the gateway allows (443 and 1024-65535 "
            "unless its operator allows more).",
            details={"reason": REASON_PORT},
        )
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
    """Why an address is not a public unicast destination, or None if it is one.

    An IPv6 address that embeds an IPv4 address is judged by what it embeds (every candidate
    position, for prefixes whose layout is not fixed), so ``[::ffff:0:7f00:1]`` is 127.0.0.1.
    """
    address = _strip_scope(address)
    if address in _METADATA_ADDRESSES:
        return REASON_METADATA
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in net for net in _IPV4_IN_IPV6) and int(address) > 1:
            embedded = _low_ipv4(address)
            return _worst([address_refusal_reason(embedded), REASON_MAPPED])
        candidates = embedded_ipv4(address)
        if candidates:
            reason = _worst([address_refusal_reason(v4) for v4 in candidates])
            if reason is not None:
                return reason
            if address.teredo is None:  # NAT64, 6to4 and ISATAP reach the public IPv4 inside
                return None
    if any(address in net for net in _ALWAYS_REFUSED_NETWORKS):
        return REASON_RESERVED
    if any(address in net for net in _PRIVATE_NETWORKS) or not address.is_global:
        return REASON_PRIVATE
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST:
        return REASON_RESERVED
    return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """Every IPv4 address a translator, tunnel or dual-stack socket could take ``address`` to."""
    if address in _WELL_KNOWN_NAT64:
        return (_low_ipv4(address),)
    if address in _LOCAL_NAT64:
        return tuple(_rfc6052_ipv4(address, length) for length in _RFC6052_LENGTHS)
    if any(address in net for net in _IPV4_IN_IPV6) and int(address) > 1:
        return (_low_ipv4(address),)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return (address.teredo[1],)
    if (int(address) >> 32) & 0xFFFFFFFF in _ISATAP_IDS:
        return (_low_ipv4(address),)
    return ()


def _low_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def _rfc6052_ipv4(address: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address at the position RFC 6052 gives a prefix of ``prefix_length`` bits."""
    if prefix_length == 96:
        return _low_ipv4(address)
    packed = address.packed
    start = prefix_length // 8
    # The 4 octets after the prefix, skipping octet 8 (the "u" octet, bits 64-71).
    octets = [packed[i] for i in range(start, 16) if i != 8][:4]
    return ipaddress.IPv4Address(bytes(octets))


def _worst(reasons: list[str | None]) -> str | None:
    present = set(reasons)
    return next((reason for reason in _REASON_ORDER if reason in present), None)


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
