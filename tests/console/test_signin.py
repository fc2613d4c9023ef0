"""Sign-in over HTTP: first-time TOTP enrolment and recovery codes, one-time passwords, codes
never accepted twice, lock-outs per user and per address, and the audit trail of it all."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from console_support import PASSWORD, User, client_for, csrf_of, make_user, sign_in
from support import make_settings


def _audit(api: Any, action: str) -> list[dict[str, Any]]:
    from msgine.server.audit import list_entries

    entries = api.runtime.db.read(lambda conn: list_entries(conn, api.account_id, limit=200))
    return [e for e in entries if e["action"] == action]


async def _password(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await client.get("/console/signin")
    return await client.post(
        "/console/signin",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
    )


async def _code(client: httpx.AsyncClient, code: str) -> httpx.Response:
    page = await client.get("/console/signin/code")
    return await client.post(
        "/console/signin/code", data={"code": code, "csrf_token": csrf_of(page.text)}
    )


async def test_first_sign_in_with_a_one_time_password_enrols_totp_then_asks_for_a_password(
    api: Any,
) -> None:
    from msgine.server.audit import Actor
    from msgine.server.console import create_user

    runtime = api.runtime
    new = runtime.db.write(
        lambda conn: create_user(
            conn,
            runtime.vault,
            account_id=api.account_id,
            email="New@Example.com",
            role="viewer",
            now=runtime.now(),
            actor=Actor("cli:test"),
        )
    )
    assert new.password and new.view["passwordMustChange"]
    async with client_for(api) as client:
        answer = await _password(client, "new@example.com", new.password)
        assert answer.headers["location"] == "/console/signin/enrol"
        page = await client.get("/console/signin/enrol")
        assert "<svg" in page.text and "<path" in page.text  # the QR code, drawn here
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)  # type: ignore[union-attr]
        assert (await client.get("/console/keys")).status_code == 303  # not signed in yet
        wrong = await client.post(
            "/console/signin/enrol", data={"code": "000000", "csrf_token": csrf_of(page.text)}
        )
        assert wrong.status_code == 200 and "not right" in wrong.text
        codes_page = await client.post(
            "/console/signin/enrol",
            data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_of(page.text)},
        )
        codes = re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", codes_page.text)
        assert len(set(codes)) == 10
        assert codes_page.headers["cache-control"] == "no-store"
        assert 'href="/console/signin/password"' in codes_page.text
        form = await client.get("/console/signin/password")
        short = await client.post(
            "/console/signin/password",
            data={"password": "short", "confirm": "short", "csrf_token": csrf_of(form.text)},
        )
        assert short.status_code == 400 and "at least 12" in short.text
        same = await client.post(
            "/console/signin/password",
            data={
                "password": new.password,
                "confirm": new.password,
                "csrf_token": csrf_of(form.text),
            },
        )
        assert same.status_code == 400
        done = await client.post(
            "/console/signin/password",
            data={"password": PASSWORD, "confirm": PASSWORD, "csrf_token": csrf_of(form.text)},
        )
        assert done.headers["location"] == "/console/"
        assert (await client.get("/console/keys")).status_code == 200
    # The one-time password no longer works; the new one does (with a recovery code here).
    async with client_for(api) as client:
        assert (await _password(client, "new@example.com", new.password)).status_code == 400
        assert (await _password(client, "new@example.com", PASSWORD)).status_code == 303
        assert (await _code(client, codes[0])).headers["location"] == "/console/"
    assert [e["action"] for e in _audit(api, "console.totp_enrol")] == ["console.totp_enrol"]
    assert _audit(api, "console.password_change")


async def test_a_totp_code_is_accepted_once(api: Any) -> None:
    user = make_user(api.runtime, api.account_id)
    code = user.code()
    async with client_for(api) as client:
        await _password(client, user.email, PASSWORD)
        assert (await _code(client, code)).status_code == 303
    async with client_for(api) as client:
        await _password(client, user.email, PASSWORD)
        replay = await _code(client, code)
        assert replay.status_code == 400 and "used already" in replay.text


async def test_a_recovery_code_signs_in_once(api: Any) -> None:
    user = make_user(api.runtime, api.account_id)
    for expected in (303, 400):
        async with client_for(api) as client:
            await _password(client, user.email, PASSWORD)
            assert (await _code(client, user.recovery_codes[3].upper())).status_code == expected
    entry = _audit(api, "console.signin")[-1]
    assert entry["outcome"] == "success" or entry["details"] in ({"secondFactor": "recovery"},)


async def test_sign_in_and_failures_are_audited_without_secrets(api: Any) -> None:
    user = make_user(api.runtime, api.account_id)
    async with client_for(api) as client:
        wrong = await _password(client, user.email, "not the password")
        unknown = await _password(client, "nobody@example.com", "not the password")
        assert wrong.status_code == unknown.status_code == 400
        # One answer for both: the page does not tell which addresses have users.
        assert re.sub(r"value=\"[^\"]*\"", "", wrong.text) == re.sub(
            r"value=\"[^\"]*\"", "", unknown.text
        )
        await sign_in(client, user)
    entries = _audit(api, "console.signin")
    outcomes = [(e["outcome"], e["details"]) for e in reversed(entries)]
    assert ("failure", {"reason": "password"}) in outcomes
    assert outcomes[-1] == ("success", {"secondFactor": "totp"})
    assert all(e["actor"] == f"user:{user.id}" for e in entries)
    text = str(entries)
    assert PASSWORD not in text and "not the password" not in text and user.email not in text


async def test_a_user_is_locked_out_after_repeated_failures(api: Any) -> None:
    user = make_user(api.runtime, api.account_id)
    limit = int(api.runtime.settings.console_signin_failures.split("/")[0])
    async with client_for(api) as client:
        for _ in range(limit - 1):
            assert (await _password(client, user.email, "wrong password!")).status_code == 400
        assert (await _code_after_password(client, user)).status_code == 400  # a wrong code
        locked = await _password(client, user.email, PASSWORD)
        assert locked.status_code == 429 and "Too many failed attempts" in locked.text
        # Another user from the same address is not locked (the address limit is higher).
        other = make_user(api.runtime, api.account_id, email="other@example.com")
        assert (await _password(client, other.email, PASSWORD)).status_code == 303
    assert _audit(api, "console.signin")[0]["details"] == {"reason": "locked"}


async def _code_after_password(client: httpx.AsyncClient, user: User) -> httpx.Response:
    assert (await _password(client, user.email, PASSWORD)).status_code == 303
    return await _code(client, "123456" if user.code() != "123456" else "654321")


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, request: pytest.FixtureRequest) -> Any:
    """A low address limit for the address lock-out test (the others keep the default)."""
    if request.node.name.startswith("test_an_address_is_locked_out"):
        return make_settings(tmp_path, database_url, auth_failure_limit="3/minute")
    return make_settings(tmp_path, database_url)


async def test_an_address_is_locked_out_after_failures_across_users(api: Any) -> None:
    user = make_user(api.runtime, api.account_id)
    async with client_for(api) as client:
        for n in range(3):
            assert (await _password(client, f"guess{n}@example.com", "guess")).status_code == 400
        assert (await _password(client, user.email, PASSWORD)).status_code == 429
        # The API shares the lock-out: the same address is refused there too.
        answer = await client.get("/api/v1/messages", headers=api.headers())
        assert answer.status_code == 429
