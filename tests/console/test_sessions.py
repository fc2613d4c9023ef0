"""Console sessions over HTTP: idle and absolute timeouts, sign-out (here and everywhere), the
token stored only as a keyed hash and replaced at sign-in, disabled users."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from console_support import PASSWORD, Console, client_for, csrf_of, make_user, signed_in


def _sessions(api: Any) -> list[dict[str, Any]]:
    from msgine.server.storage import console_sessions

    return api.runtime.db.read(
        lambda conn: [dict(r._mapping) for r in conn.execute(sa.select(console_sessions))]
    )


async def _signed_out(console: Console) -> bool:
    answer = await console.client.get("/console/keys")
    return answer.status_code == 303 and answer.headers["location"] == "/console/signin"


async def test_a_session_ends_after_the_idle_timeout(console: Console, clock: Any) -> None:
    idle = console.api.runtime.settings.console_idle_timeout
    clock.advance(seconds=idle - 60)
    assert (await console.client.get("/console/keys")).status_code == 200  # activity
    clock.advance(seconds=idle - 60)
    assert (await console.client.get("/console/keys")).status_code == 200
    clock.advance(seconds=idle + 1)
    assert await _signed_out(console)
    assert all(s["ended_at"] is not None for s in _sessions(console.api))


async def test_a_session_ends_at_the_absolute_timeout_however_active(
    console: Console, clock: Any
) -> None:
    settings = console.api.runtime.settings
    step = settings.console_idle_timeout // 2
    elapsed = 0
    while elapsed + step < settings.console_absolute_timeout:
        clock.advance(seconds=step)
        elapsed += step
        assert (await console.client.get("/console/")).status_code == 200
    clock.advance(seconds=settings.console_absolute_timeout - elapsed + 1)
    assert await _signed_out(console)


async def test_a_half_finished_sign_in_expires_in_minutes(api: Any, clock: Any) -> None:
    user = make_user(api.runtime, api.account_id)
    async with client_for(api) as client:
        page = await client.get("/console/signin")
        await client.post(
            "/console/signin",
            data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        )
        assert (await client.get("/console/signin/code")).status_code == 200
        clock.advance(minutes=11)
        answer = await client.get("/console/signin/code")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/signin"


async def test_the_database_holds_a_hash_of_the_token_which_sign_in_replaces(api: Any) -> None:
    user = make_user(api.runtime, api.account_id)
    async with client_for(api) as client:
        page = await client.get("/console/signin")
        answer = await client.post(
            "/console/signin",
            data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        )
        before = answer.cookies["msgine_console"]
        page = await client.get("/console/signin/code")
        answer = await client.post(
            "/console/signin/code", data={"code": user.code(), "csrf_token": csrf_of(page.text)}
        )
    after = answer.cookies["msgine_console"]
    assert before != after  # a token known before sign-in is worthless after it
    (row,) = _sessions(api)
    assert row["stage"] == "full"
    assert before not in str(row) and after not in str(row)
    async with client_for(api) as planted:
        planted.cookies.set("msgine_console", before)
        assert (await planted.get("/console/keys")).status_code == 303


async def test_sign_out_ends_this_session(console: Console) -> None:
    answer = await console.post("/console/signout")
    assert answer.status_code == 303
    assert await _signed_out(console)


async def test_sign_out_everywhere_ends_the_users_other_sessions_only(
    console: Console,
) -> None:
    api = console.api
    other_user = make_user(api.runtime, api.account_id, email="other@example.com")
    async for second in signed_in(api, console.user):
        async for third in signed_in(api, other_user):
            page = await console.client.get("/console/sessions")
            assert page.text.count("(this one)") == 1
            assert page.text.count('/end"') == 2  # two sessions listed, each with its button
            answer = await second.post("/console/sessions/end-all")
            assert answer.status_code == 303
            assert await _signed_out(console)
            assert await _signed_out(second)
            assert not await _signed_out(third)  # another user's session is untouched
    entries = _audit(api, "console.signout_everywhere")
    assert entries and entries[0]["details"] == {"sessionsEnded": 2}


async def test_ending_one_session_from_the_list(console: Console) -> None:
    api = console.api
    async for second in signed_in(api, console.user):
        other_id = next(
            s["id"]
            for s in _sessions(api)
            if s["ended_at"] is None and s["id"] != _current(api, console)
        )
        assert (await console.post(f"/console/sessions/{other_id}/end")).status_code == 303
        assert await _signed_out(second)
        assert not await _signed_out(console)


def _current(api: Any, console: Console) -> str:
    from msgine.server.console._sessions import token_hash

    digest = token_hash(api.runtime.vault, console.client.cookies["msgine_console"])
    return next(s["id"] for s in _sessions(api) if s["token_hash"] == digest)


async def test_disabling_a_user_ends_their_sessions_at_once(console: Console) -> None:
    from msgine.server.audit import Actor
    from msgine.server.console import disable_user

    runtime = console.api.runtime
    runtime.db.write(
        lambda conn: disable_user(
            conn, runtime.vault, console.user.email, now=runtime.now(), actor=Actor("cli:t")
        )
    )
    assert await _signed_out(console)


def _audit(api: Any, action: str) -> list[dict[str, Any]]:
    from msgine.server.audit import list_entries

    entries = api.runtime.db.read(lambda conn: list_entries(conn, api.account_id, limit=100))
    return [e for e in entries if e["action"] == action]
