"""API6:2023 Unrestricted access to sensitive business flows: SMS pumping.

Limits count what is sent (one unit per recipient), not requests, and every account has a
daily cap by default, which it may lower and only the operator may raise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from security_helpers import run_cli, settings_env

from msgine.server.accounts import AccountPolicy
from msgine.server.api._limits import account_limits
from msgine.server.config import Settings
from support import make_settings

DAILY_CAP = 8


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Any:
    """A small operator daily cap, and account settings read afresh on every request."""
    return make_settings(tmp_path, database_url, daily_cap=DAILY_CAP, rate_limit_policy_ttl=0)


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"+2567015{n:05d}" for n in range(start, start + count)]


def _refused(response: Any) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert int(response.headers["retry-after"]) >= 1
    return error


async def test_a_send_costs_one_unit_per_recipient(api: Any) -> None:
    key = api.new_key(rate_limit="5/minute")
    first = await api.send(key, to=numbers(3))
    assert first.status_code == 201
    assert first.headers["x-ratelimit-remaining"] == "2"
    _refused(await api.send(key, to=numbers(3, 3)))  # costs one unit, as any request does
    assert (await api.send(key, to=numbers(1, 3))).status_code == 201
    _refused(await api.send(key, to=numbers(1, 4)))


async def test_a_send_larger_than_the_limit_says_it_never_fits(api: Any) -> None:
    key = api.new_key(rate_limit="5/minute")
    error = _refused(await api.send(key, to=numbers(6)))
    assert error["details"]["reason"] == "too_many_recipients"
    assert error["details"]["recipients"] == 6 and error["details"]["limit"] == 5
    # The refused request cost one unit, as any request does; its recipients cost nothing.
    assert (await api.send(key, to=numbers(4))).status_code == 201


def test_the_daily_cap_is_on_by_default() -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.daily_cap == 10_000
    assert account_limits(AccountPolicy(), defaults).daily == "10000/day"


async def test_the_operators_daily_cap_applies_to_every_account(api: Any) -> None:
    assert (await api.send(to=numbers(5))).status_code == 201
    assert (await api.send(to=numbers(3, 5))).status_code == 201
    error = _refused(await api.send(to=numbers(1, 8)))
    assert error["details"]["reason"] == "daily_cap"
    assert error["details"]["dailyCap"] == DAILY_CAP
    assert int(error["retryAfter"]) > 3600  # a day's window


async def test_an_account_may_lower_its_cap_but_not_raise_it(api: Any) -> None:
    async def patch(cap: int) -> Any:
        return await api.client.patch(
            "/api/v1/account/policy", json={"dailyCap": cap}, headers=api.headers()
        )

    raised = await patch(DAILY_CAP + 1)
    assert raised.status_code == 403 and "dailyCap" in raised.json()["error"]["details"]["exceeds"]
    assert (await patch(3)).status_code == 200
    assert (await api.send(to=numbers(3))).status_code == 201
    assert _refused(await api.send(to=numbers(1, 3)))["details"]["reason"] == "daily_cap"


async def test_only_the_operator_raises_an_accounts_cap(api: Any, settings: Any) -> None:
    done = run_cli(settings_env(settings), "accounts", "set-daily-cap", api.account_id, "20")
    assert done.returncode == 0, done.stderr
    raised = await api.client.patch(
        "/api/v1/account/policy", json={"dailyCap": 15}, headers=api.headers()
    )
    assert raised.status_code == 200
    assert (await api.send(to=numbers(15))).status_code == 201
    _refused(await api.send(to=numbers(1, 15)))


async def test_test_traffic_does_not_use_up_live_allowances(api: Any) -> None:
    live = api.new_key(mode="live")
    assert (await api.send(to=numbers(DAILY_CAP))).status_code == 201
    _refused(await api.send(to=numbers(1, DAILY_CAP)))
    assert (await api.send(live, to=numbers(DAILY_CAP, 100))).status_code == 201
