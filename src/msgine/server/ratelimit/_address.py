"""Which client address counts for per-address limits and lock-outs."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN_ADDRESS = "unknown"


@lru_cache(maxsize=64)
def _networks(cidrs: tuple[str, ...]) -> tuple[_IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)
    except ValueError:
        raise ValueError("trusted proxies must be IP addresses or CIDR networks") from None


def parse_address(text: str | None) -> _IPAddress | None:
    """An address from a peer or X-Forwarded-For entry; None when malformed.

    Accepts an optional port (`1.2.3.4:80`, `[::1]:80`); IPv4-mapped IPv6 becomes IPv4 so
    one client does not get two buckets.
    """
    if not text:
        return None
    value = text.strip()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[str]
) -> str:
    """The address to limit: the peer, unless the peer is a trusted proxy.

    Behind trusted proxies, X-Forwarded-For is read right to left and the first entry that is
    not itself a trusted proxy wins; entries further left are client-supplied and ignored, so
    a client cannot choose its own bucket. Malformed entries are skipped. Returns "unknown"
    when there is no usable peer address (e.g. a Unix socket).
    """
    peer_address = parse_address(peer)
    if peer_address is None:
        return UNKNOWN_ADDRESS
    networks = _networks(tuple(trusted_proxies))
    if not _trusted(peer_address, networks):
        return str(peer_address)
    candidate = peer_address
    for entry in reversed((forwarded_for or "").split(",")):
        address = parse_address(entry)
        if address is None:
            continue
        candidate = address
        if not _trusted(address, networks):
            break
    return str(candidate)


def _trusted(address: _IPAddress, networks: tuple[_IPNetwork, ...]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


@lru_cache(maxsize=8192)  # parsing costs microseconds; the same clients come back
def address_bucket(address: str) -> str:
    """The identity an address is limited under: IPv6 by /64, as one host usually holds one.

    Without this an IPv6 client would get a fresh bucket (and a fresh lock-out counter) for
    each of its 2**64 addresses.
    """
    parsed = parse_address(address)
    if parsed is None:
        return UNKNOWN_ADDRESS
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)
