"""Webhook URL policy: syntax rules and the SSRF address checks, with a fake resolver (no DNS)."""

from __future__ import annotations

import socket

import anyio
import pytest

from msgine.server.errors import InsecureCallbackUrl, InvalidRequest
from msgine.server.webhooks._urlpolicy import (
    ResolvedTarget,
    UrlPolicy,
    check_url_syntax,
    resolve_and_check,
    system_resolver,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeResolver:
    """Answers from a fixed table and records every lookup."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "not found")
        return self.table[host]


PUBLIC = "93.184.215.14"


# --- syntax ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.example.com/msgine", "https://hooks.example.com/msgine"),
        ("HTTPS://Hooks.Example.COM:443/a?b=1#frag", "https://hooks.example.com/a?b=1"),
        ("https://hooks.example.com:8443/x", "https://hooks.example.com:8443/x"),
        ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
        ("https://[2606:4700::1]/x", "https://[2606:4700::1]/x"),
    ],
)
def test_valid_urls_are_normalised(url: str, expected: str) -> None:
    assert check_url_syntax(url) == expected


@pytest.mark.parametrize(
    "url", ["http://hooks.example.com/x", "ftp://hooks.example.com/x", "HTTP://a.example/"]
)
def test_non_https_schemes_are_insecure(url: str) -> None:
    with pytest.raises(InsecureCallbackUrl) as info:
        check_url_syntax(url)
    assert info.value.message.startswith("Webhook URLs must use https. ")
    assert info.value.code == "insecure_callback_url"
    assert info.value.status == 400


async def test_refusals_say_how_to_develop_locally() -> None:
    """A developer pointing a webhook at their laptop learns the command and the settings."""
    with pytest.raises(InsecureCallbackUrl) as plain:
        check_url_syntax("http://localhost:9000/hook")
    with pytest.raises(InsecureCallbackUrl) as private:
        await resolve_and_check("https://127.0.0.1:9000/hook", UrlPolicy(allow_private=False))
    for refusal in (plain.value, private.value):
        for hint in (
            "msgine webhooks listen --forward-to",
            "MSGINE_WEBHOOK_ALLOW_PRIVATE",
            "MSGINE_WEBHOOK_CA_BUNDLE",
        ):
            assert hint in refusal.message, (hint, refusal.message)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "missing_url"),
        ("https://a.example/" + "x" * 2048, "url_too_long"),
        ("https://user:secret@a.example/x", "userinfo"),
        ("https://user@a.example/x", "userinfo"),
        ("https:///path", "missing_host"),
        ("hooks.example.com/x", "malformed_url"),
        ("https://a.example:0/", "malformed_url"),
        ("https://a.example:99999/", "malformed_url"),
        ("https://a.example:abc/", "malformed_url"),
        ("https://a b.example/", "malformed_url"),
        ("https://a.example/\x00", "malformed_url"),
        ("https://a..example/", "malformed_url"),
        ("https://%61.example/", "malformed_url"),
        ("https://[1::2::3]/", "malformed_url"),
        ("https://[fe80::1%25eth0]/", "malformed_url"),
        ("https://127.1/", "malformed_url"),
        ("https://0x7f.1/", "malformed_url"),
        ("https://2130706433/", "malformed_url"),
    ],
)
def test_malformed_urls_are_invalid_requests(url: str, reason: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_url_syntax(url)
    assert info.value.details == {"reason": reason}


def test_errors_never_echo_the_url_or_its_credentials() -> None:
    with pytest.raises(InvalidRequest) as info:
        check_url_syntax("https://user:hunter2@a.example/x")
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value.details)


def test_max_length_url_is_accepted() -> None:
    url = "https://a.example/" + "x" * (2048 - len("https://a.example/"))
    assert check_url_syntax(url) == url


# --- resolution and address checks -------------------------------------------------------------


async def test_public_name_resolves_to_a_target() -> None:
    resolver = FakeResolver({"hooks.example.com": [PUBLIC, PUBLIC, "2606:4700::1"]})
    target = await resolve_and_check(
        "https://hooks.example.com:8443/x#f", UrlPolicy(resolver=resolver)
    )
    assert target == ResolvedTarget(
        url="https://hooks.example.com:8443/x",
        host="hooks.example.com",
        port=8443,
        addresses=(PUBLIC, "2606:4700::1"),
    )
    assert resolver.calls == [("hooks.example.com", 8443)]


async def test_ip_literals_are_used_without_resolving() -> None:
    resolver = FakeResolver({})
    target = await resolve_and_check("https://8.8.8.8/x", UrlPolicy(resolver=resolver))
    assert target.addresses == ("8.8.8.8",)
    assert target.port == 443
    assert resolver.calls == []


REFUSED_PRIVATE = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.1.1",
    "100.64.0.1",
    "100.127.255.254",
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.9",
    "198.18.0.1",
    "198.19.255.1",
    "192.0.0.8",
    "::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",
    "2001:db8::1",
    "100::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
]
REFUSED_ALWAYS = {
    "0.0.0.0": "reserved_address",
    "0.1.2.3": "reserved_address",
    "224.0.0.1": "reserved_address",
    "239.255.255.250": "reserved_address",
    "240.0.0.1": "reserved_address",
    "255.255.255.255": "reserved_address",
    "::": "reserved_address",
    "ff02::1": "reserved_address",
    "::ffff:127.0.0.1": "ipv4_mapped_address",
    "::ffff:8.8.8.8": "ipv4_mapped_address",
    "::127.0.0.1": "ipv4_mapped_address",
    "169.254.169.254": "metadata_address",
    "169.254.170.2": "metadata_address",
    "100.100.100.200": "metadata_address",
    "168.63.129.16": "metadata_address",
    "192.0.0.192": "metadata_address",
    "fd00:ec2::254": "metadata_address",
    "64:ff9b::a9fe:a9fe": "metadata_address",  # NAT64 of 169.254.169.254
}


@pytest.mark.parametrize("address", REFUSED_PRIVATE)
async def test_private_addresses_are_refused_by_default(address: str) -> None:
    resolver = FakeResolver({"evil.example": [address]})
    with pytest.raises(InsecureCallbackUrl) as info:
        await resolve_and_check("https://evil.example/x", UrlPolicy(resolver=resolver))
    assert info.value.details == {"reason": "private_address"}
    assert address not in info.value.message


@pytest.mark.parametrize("address", REFUSED_PRIVATE)
async def test_allow_private_opens_private_addresses(address: str) -> None:
    resolver = FakeResolver({"dev.example": [address]})
    target = await resolve_and_check(
        "https://dev.example/x", UrlPolicy(allow_private=True, resolver=resolver)
    )
    assert len(target.addresses) == 1


@pytest.mark.parametrize(("address", "reason"), sorted(REFUSED_ALWAYS.items()))
@pytest.mark.parametrize("allow_private", [False, True])
async def test_metadata_reserved_and_mapped_addresses_are_always_refused(
    address: str, reason: str, allow_private: bool
) -> None:
    resolver = FakeResolver({"evil.example": [address]})
    policy = UrlPolicy(allow_private=allow_private, resolver=resolver)
    with pytest.raises(InsecureCallbackUrl) as info:
        await resolve_and_check("https://evil.example/x", policy)
    assert info.value.details == {"reason": reason}
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(InsecureCallbackUrl):
        await resolve_and_check(f"https://{host}/x", policy)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1", "64:ff9b::808:808"])
async def test_public_addresses_pass(address: str) -> None:
    resolver = FakeResolver({"ok.example": [address]})
    target = await resolve_and_check("https://ok.example/", UrlPolicy(resolver=resolver))
    assert target.addresses == (address,)


async def test_one_private_answer_among_public_ones_refuses_the_url() -> None:
    resolver = FakeResolver({"mixed.example": [PUBLIC, "10.0.0.5", "2606:4700::1"]})
    with pytest.raises(InsecureCallbackUrl):
        await resolve_and_check("https://mixed.example/", UrlPolicy(resolver=resolver))


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "api.localhost", "localhost."])
async def test_localhost_names_are_refused_without_resolving(host: str) -> None:
    resolver = FakeResolver({host.lower(): [PUBLIC]})
    with pytest.raises(InsecureCallbackUrl) as info:
        await resolve_and_check(f"https://{host}/x", UrlPolicy(resolver=resolver))
    assert info.value.details == {"reason": "private_address"}
    assert resolver.calls == []


@pytest.mark.parametrize(
    "host", ["metadata.google.internal", "metadata", "Metadata.Google.Internal.", "metadata.goog"]
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_metadata_names_are_always_refused(host: str, allow_private: bool) -> None:
    resolver = FakeResolver({host.lower().rstrip("."): [PUBLIC]})
    policy = UrlPolicy(allow_private=allow_private, resolver=resolver)
    with pytest.raises(InsecureCallbackUrl) as info:
        await resolve_and_check(f"https://{host}/x", policy)
    assert info.value.details == {"reason": "metadata_address"}
    assert resolver.calls == []


async def test_insecure_scheme_is_refused_before_resolving() -> None:
    resolver = FakeResolver({"a.example": [PUBLIC]})
    with pytest.raises(InsecureCallbackUrl):
        await resolve_and_check("http://a.example/x", UrlPolicy(resolver=resolver))
    assert resolver.calls == []


@pytest.mark.parametrize("answers", [[], ["not-an-address"]])
async def test_unusable_answers_are_refused(answers: list[str]) -> None:
    resolver = FakeResolver({"odd.example": answers})
    with pytest.raises((InvalidRequest, InsecureCallbackUrl)):
        await resolve_and_check("https://odd.example/", UrlPolicy(resolver=resolver))


async def test_unresolvable_host_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest) as info:
        await resolve_and_check("https://nowhere.example/", UrlPolicy(resolver=FakeResolver({})))
    assert info.value.details == {"reason": "unresolvable_host"}
    assert not isinstance(info.value, InsecureCallbackUrl)


async def test_system_resolver_resolves_localhost_to_loopback() -> None:
    answers = await system_resolver("localhost", 443)
    assert answers
    assert set(answers) <= {"127.0.0.1", "::1"}


async def test_default_policy_uses_the_system_resolver_and_refuses_loopback() -> None:
    with pytest.raises(InsecureCallbackUrl):
        await resolve_and_check("https://127.0.0.1/", UrlPolicy())
    target = await resolve_and_check("https://localhost:8443/", UrlPolicy(allow_private=True))
    assert set(target.addresses) <= {"127.0.0.1", "::1"}


async def test_a_resolver_that_never_answers_is_cut_off() -> None:
    async def hanging(host: str, port: int) -> list[str]:
        await anyio.Event().wait()
        return []

    policy = UrlPolicy(resolver=hanging, resolve_timeout=0.05)
    with pytest.raises(InvalidRequest) as info:
        await resolve_and_check("https://slow.example/", policy)
    assert info.value.details == {"reason": "unresolvable_host"}
