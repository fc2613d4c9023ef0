"""Accept deliveries only from the sender's published egress addresses (GET /api/v1/meta/ips).

Behind a proxy the peer is the proxy, so ``X-Forwarded-For`` is read right to left, skipping
addresses of proxies you trust; the first untrusted address is the client. Entries left of it
were written by the client and are never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _networks(cidrs: Iterable[str] | str) -> tuple[IPNetwork, ...]:
    items = cidrs.replace(",", " ").split() if isinstance(cidrs, str) else cidrs
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items)


def _address(value: str | None) -> IPAddress | None:
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class IpAllowList:
    def __init__(
        self, cidrs: Iterable[str] | str, trusted_proxies: Iterable[str] | str = ()
    ) -> None:
        """``cidrs`` and ``trusted_proxies``: addresses or CIDR blocks (list, or a comma string)."""
        self.networks = _networks(cidrs)
        self.trusted_proxies = _networks(trusted_proxies)

    def __repr__(self) -> str:
        return f"IpAllowList({[str(n) for n in self.networks]!r})"

    @staticmethod
    def _contains(networks: tuple[IPNetwork, ...], address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in networks)

    def _trusted(self, address: IPAddress) -> bool:
        return self._contains(self.trusted_proxies, address)

    def client_ip(self, peer: str | None, x_forwarded_for: str | None = None) -> str | None:
        """The address to judge; None when it cannot be determined (which ``allows`` refuses)."""
        peer_address = _address(peer)
        if peer_address is None:
            return None
        if not x_forwarded_for or not self._trusted(peer_address):
            return str(peer_address)
        hops = [hop.strip() for hop in x_forwarded_for.split(",")]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return None  # a garbled hop written by an untrusted party: judge nothing
            if not self._trusted(address):
                return str(address)
        return str(_address(hops[0]))  # every hop is a trusted proxy: the first is the origin

    def allows(self, ip: str | None) -> bool:
        address = _address(ip)
        return address is not None and self._contains(self.networks, address)

    def check(self, peer: str | None, x_forwarded_for: str | None = None) -> bool:
        return self.allows(self.client_ip(peer, x_forwarded_for))
