"""IP allow-list with trusted proxies."""

from __future__ import annotations

import pytest

from msgine.webhooks import IpAllowList

ALLOW = IpAllowList(["203.0.113.0/24", "2001:db8::/32"], trusted_proxies=["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "xff", "client", "allowed"),
    [
        ("203.0.113.7", None, "203.0.113.7", True),
        ("198.51.100.1", None, "198.51.100.1", False),
        ("2001:db8::1", None, "2001:db8::1", True),
        ("::ffff:203.0.113.9", None, "203.0.113.9", True),
        # An untrusted peer's X-Forwarded-For is ignored: it could say anything.
        ("198.51.100.1", "203.0.113.7", "198.51.100.1", False),
        # Through our proxy: the right-most untrusted hop is the client.
        ("10.0.0.2", "203.0.113.7", "203.0.113.7", True),
        ("10.0.0.2", "203.0.113.7, 10.1.1.1", "203.0.113.7", True),
        # A spoofed left-most entry does not help the attacker.
        ("10.0.0.2", "203.0.113.7, 198.51.100.1", "198.51.100.1", False),
        ("10.0.0.2", "garbage, 10.1.1.1", None, False),
        ("10.0.0.2", "198.51.100.1, garbage", None, False),
        ("10.0.0.2", "10.0.0.3, 10.0.0.4", "10.0.0.3", False),
        (None, None, None, False),
        ("not-an-ip", None, None, False),
    ],
)
def test_client_ip_and_allows(
    peer: str | None, xff: str | None, client: str | None, allowed: bool
) -> None:
    assert ALLOW.client_ip(peer, xff) == client
    assert ALLOW.check(peer, xff) is allowed


def test_comma_string_configuration() -> None:
    allow = IpAllowList("203.0.113.5, 198.51.100.0/30")
    assert allow.allows("203.0.113.5")
    assert allow.allows("198.51.100.3")
    assert not allow.allows("198.51.100.4")


def test_invalid_cidr_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError):
        IpAllowList(["300.1.1.1/8"])
