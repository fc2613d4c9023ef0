"""The console's web security over HTTP: cookie flags, headers, CSRF, escaping, static files."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from console_support import PASSWORD, Console, client_for, csrf_of, make_user


def _cookie_lines(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


async def test_session_cookie_is_httponly_strict_and_not_secure_on_loopback_http(
    api: Any,
) -> None:
    user = make_user(api.runtime, api.account_id)
    async with client_for(api) as client:
        page = await client.get("/console/signin")
        (pre,) = _cookie_lines(page)
        answer = await client.post(
            "/console/signin",
            data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        )
    session = next(c for c in _cookie_lines(answer) if c.startswith("msgine_console="))
    for line in (pre, session):
        attributes = [part.strip().lower() for part in line.split(";")]
        assert "httponly" in attributes
        assert "samesite=strict" in attributes
        assert "path=/console" in attributes
        assert "secure" not in attributes  # plain HTTP on loopback: a browser would drop it
    assert "strict-transport-security" not in answer.headers


async def test_over_tls_cookies_are_secure_host_cookies_and_hsts_is_sent(api: Any) -> None:
    user = make_user(api.runtime, api.account_id)
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://console.example.com"
    ) as client:
        page = await client.get("/console/signin")
        answer = await client.post(
            "/console/signin",
            data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        )
    assert answer.status_code == 303
    session = next(c for c in _cookie_lines(answer) if c.startswith("__Host-msgine_console="))
    attributes = [part.strip().lower() for part in session.split(";")]
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= set(attributes)
    assert "domain" not in session.lower()
    assert answer.headers["strict-transport-security"].startswith("max-age=")


async def test_plain_http_to_a_public_name_still_gets_secure_cookies(api: Any) -> None:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.example.com") as c:
        page = await c.get("/console/signin")
    (pre,) = _cookie_lines(page)
    assert "secure" in [part.strip().lower() for part in pre.split(";")]


@pytest.mark.parametrize("path", ["/console/signin", "/console/", "/console/static/console.css"])
async def test_every_console_answer_has_the_security_headers(api: Any, path: str) -> None:
    answer = await api.client.get(path)
    csp = answer.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp and "http" not in csp and "*" not in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "same-origin"


async def test_pages_are_not_cached_and_carry_no_inline_script_or_style(console: Console) -> None:
    for path in ("/console/", "/console/keys", "/console/sessions"):
        page = await console.client.get(path)
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        html = page.text.lower()
        assert "<script>" not in html and "<style" not in html and " style=" not in html
        assert " on" + "click=" not in html
        assert "http://" not in html and "https://" not in html  # no third-party origin
        for asset in ("/console/static/console.css", "/console/static/console.js"):
            assert asset in html
            assert (await console.client.get(asset)).status_code == 200


async def _revoked(console: Console) -> bool:
    from msgine.server.keys import list_keys

    rows = console.api.runtime.db.read(lambda conn: list_keys(conn, console.api.account_id))
    return any(r["revoked_at"] is not None for r in rows)


@pytest.mark.parametrize("token", [None, "", "wrong", "other-session"])
async def test_a_state_change_without_its_sessions_csrf_token_is_refused(
    console: Console, token: str | None
) -> None:
    from msgine.server.keys import list_keys

    key_id = console.api.runtime.db.read(lambda c: list_keys(c, console.api.account_id))[0]["id"]
    if token == "other-session":  # a valid token, of another user's session
        other = make_user(console.api.runtime, console.api.account_id, email="b@example.com")
        from console_support import signed_in

        async for second in signed_in(console.api, other):
            token = second.csrf
    data = {} if token is None else {"csrf_token": token}
    answer = await console.client.post(f"/console/keys/{key_id}/revoke", data=data)
    assert answer.status_code == 403
    assert "did not come from this console" in answer.text
    assert not await _revoked(console)
    # The same post with the session's own token goes through.
    answer = await console.post(f"/console/keys/{key_id}/revoke")
    assert answer.status_code == 303
    assert await _revoked(console)


@pytest.mark.parametrize(
    "headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}]
)
async def test_a_cross_site_post_is_refused_even_with_the_token(
    console: Console, headers: dict[str, str]
) -> None:
    answer = await console.client.post(
        "/console/sessions/end-all", data={"csrf_token": console.csrf}, headers=headers
    )
    assert answer.status_code == 403
    assert (await console.client.get("/console/sessions")).status_code == 200  # still signed in


async def test_the_sign_in_form_is_protected_too(api: Any) -> None:
    user = make_user(api.runtime, api.account_id)
    answer = await api.client.post(
        "/console/signin", data={"email": user.email, "password": PASSWORD}
    )
    assert answer.status_code == 403
    assert "msgine_console=" not in answer.headers.get("set-cookie", "")


async def test_output_is_escaped(console: Console) -> None:
    from msgine.server.keys import create_key

    runtime = console.api.runtime
    runtime.db.write(
        lambda conn: create_key(
            conn,
            runtime.vault,
            account_id=console.api.account_id,
            now=runtime.now(),
            name='<script>alert("x")</script>',
        )
    )
    page = await console.client.get("/console/keys")
    assert '<script>alert("x")</script>' not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
