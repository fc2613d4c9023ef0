"""Console test helpers: users with a known password and TOTP secret, codes, signed-in clients.

Import as ``from console_support import ...``. ``make_user`` works on an opened runtime (the
``api`` fixture's); the browser helpers live in tests/browser/conftest.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


@dataclass
class User:
    """A console user as a test knows it: its secrets are the test's own."""

    id: str
    email: str
    role: str
    account_id: str
    password: str = field(repr=False)
    totp_secret: str | None = field(default=None, repr=False)
    recovery_codes: list[str] = field(default_factory=list, repr=False)
    #: The console's clock when it is a test clock (an in-process console's ``FakeClock``).
    clock: Any = field(default=None, repr=False)
    _last_step: int = -1

    def code(self) -> str:
        """A TOTP code not used before (the console refuses a step twice): the current step,
        or the next one. When both are used, the step after comes: the test clock moves to it,
        or, on the real clock (a gateway process's console), the code waits for it."""
        import pyotp

        assert self.totp_secret is not None
        now = (self.clock or _wall_clock)().timestamp()
        current = int(now) // 30
        # The console takes one step of drift either way, so the previous step is valid until
        # this one ends: used only while at least 15 s of it remain for a slow page to submit.
        earliest = current - 1 if now % 30 < 15 else current
        step = max(earliest, self._last_step + 1)
        if step > current + 1 and self.clock is not None:
            self.clock.advance(seconds=(step - current - 1) * 30)
        while step > int(time.time()) // 30 + 1 and self.clock is None:
            time.sleep(0.5)
        self._last_step = step
        return str(pyotp.TOTP(self.totp_secret).at(step * 30))


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def make_user(
    runtime: Any,
    account_id: str,
    *,
    email: str = "owner@example.com",
    role: str = "owner",
    enrolled: bool = True,
    password: str = PASSWORD,
) -> User:
    """A user with ``password`` (not one-time); with ``enrolled``, TOTP set up as a user would."""
    import pyotp

    from msgine.server.audit import Actor
    from msgine.server.console import create_user, finish_enrolment, get_user, pending_secret

    now = runtime.now()
    actor = Actor(name="cli:test")

    def create(conn: Any) -> User:
        new = create_user(
            conn,
            runtime.vault,
            account_id=account_id,
            email=email,
            role=role,
            now=now,
            actor=actor,
            password=password,
        )
        user = User(new.view["id"], new.view["email"], role, account_id, password)
        if hasattr(runtime.clock, "advance"):
            user.clock = runtime.clock
        if enrolled:
            secret = pending_secret(conn, runtime.vault, get_user(conn, user.id))
            code = pyotp.TOTP(secret).at(now)
            codes = finish_enrolment(
                conn, runtime.vault, get_user(conn, user.id), code, now=now, actor=actor
            )
            assert codes is not None
            user.totp_secret, user.recovery_codes = secret, codes
            user._last_step = int(now.timestamp()) // 30
        return user

    created: User = runtime.db.write(create)
    return created


def client_for(api: Any) -> httpx.AsyncClient:
    """A client of the in-process app as a browser on this machine sees it: on loopback over
    plain HTTP, where console cookies are not ``Secure`` (``api.client``'s ``testserver`` host
    is not loopback, so a ``Secure`` cookie would never come back over its plain HTTP)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url="http://127.0.0.1"
    )


def csrf_of(html: str) -> str:
    """The CSRF token of the first form in a page."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, user: User) -> str:
    """Sign ``user`` in on ``client`` (password, then TOTP); returns the session's CSRF token."""
    page = await client.get("/console/signin")
    answer = await client.post(
        "/console/signin",
        data={"email": user.email, "password": user.password, "csrf_token": csrf_of(page.text)},
    )
    assert answer.status_code == 303, answer.text
    page = await client.get("/console/signin/code")
    answer = await client.post(
        "/console/signin/code", data={"code": user.code(), "csrf_token": csrf_of(page.text)}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/", answer.text
    home = await client.get("/console/")
    assert home.status_code == 200
    return csrf_of(home.text)


@dataclass
class Console:
    """A signed-in browser-like client: ``client`` keeps the session cookie, ``csrf`` its token."""

    api: Any
    user: User
    client: httpx.AsyncClient
    csrf: str

    async def post(self, path: str, **data: str) -> httpx.Response:
        return await self.client.post(path, data={"csrf_token": self.csrf, **data})


async def signed_in(api: Any, user: User) -> AsyncIterator[Console]:
    async with client_for(api) as client:
        csrf = await sign_in(client, user)
        yield Console(api, user, client, csrf)
