"""``privacy erase`` and ``retention purge`` show what they will remove and ask first; --dry-run
only counts; a number never seen is reported as such; progress is drawn on a terminal only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cli_helpers import msgine, on_a_terminal

from support import settings_env

pytestmark = pytest.mark.slow  # a process per CLI run: scheduled first (see tests/conftest.py)

PHONE = "+256701521269"
NEVER_SEEN = "+256701521270"


async def _sent(api: Any) -> dict[str, str]:
    """One delivered message to PHONE; the environment of a CLI on the same database."""
    sent = await api.send(to=PHONE, message="Erase me")
    assert sent.status_code == 201
    await api.drain()
    return settings_env(api.runtime.settings)


def _export(env: dict[str, str]) -> list[Any]:
    done = msgine(env, "privacy", "export", "--phone", PHONE)
    assert done.returncode == 0, done.stderr
    accounts: list[Any] = json.loads(done.stdout)["accounts"]
    return accounts


async def test_erasing_a_number_never_seen_says_so(api: Any) -> None:
    env = await _sent(api)
    result = msgine(env, "privacy", "erase", "--phone", NEVER_SEEN)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"erased": False, "found": False, "accounts": []}
    assert "nothing to erase" in result.stderr


async def test_erase_shows_the_plan_asks_and_dry_run_changes_nothing(api: Any) -> None:
    env = await _sent(api)
    refused = msgine(env, "privacy", "erase", "--phone", PHONE)
    assert refused.returncode == 1
    assert "This erases the number" in refused.stderr and "messages 1" in refused.stderr
    assert PHONE not in refused.stderr + refused.stdout
    assert _export(env)[0]["messages"]  # nothing was erased

    preview = msgine(env, "privacy", "erase", "--phone", PHONE, "--dry-run")
    assert preview.returncode == 0, preview.stderr
    [would] = json.loads(preview.stdout)["wouldErase"]
    assert (would["accountId"], would["messages"]) == (api.account_id, 1)
    assert _export(env)[0]["messages"]

    done = msgine(env, "privacy", "erase", "--phone", PHONE, "--yes")
    assert done.returncode == 0, done.stderr
    erased = json.loads(done.stdout)
    assert erased["erased"] is True and erased["accounts"][0]["recipients"] == 1
    assert "\x1b" not in done.stderr  # no progress drawing off a terminal
    assert _export(env) == []


async def test_purge_counts_with_dry_run_asks_then_removes_the_same(api: Any) -> None:
    env = await _sent(api)
    args = ("retention", "purge", "--older-than-days", "0")
    preview = msgine(env, *args, "--dry-run")
    assert preview.returncode == 0, preview.stderr
    counts = json.loads(preview.stdout)["accounts"][api.account_id]
    assert counts["messages"] == 1
    refused = msgine(env, *args)
    assert refused.returncode == 1
    assert f"{api.account_id}: messages 1" in refused.stderr
    assert _export(env)[0]["messages"]  # still there

    done = msgine(env, *args, "-y")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["accounts"][api.account_id] == counts
    assert "\x1b" not in done.stderr
    nothing_left = msgine(env, *args)  # nothing due: nothing to ask about
    assert nothing_left.returncode == 0


async def test_progress_is_drawn_on_a_terminal(api: Any) -> None:
    env = {**(await _sent(api)), "TERM": "xterm-256color", "COLUMNS": "100"}
    shown = on_a_terminal(env, ["retention", "purge", "--older-than-days", "0"], "y\n")
    assert "Purge now? [y/N]" in shown
    assert "purging" in shown and "\x1b[" in shown  # rich's bar, drawn and cleared
