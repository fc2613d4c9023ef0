"""Inbound keywords: STOP, START and HELP recognition and per-account lists."""

from __future__ import annotations

import pytest

from msgine.server.compliance._keywords import DEFAULT_KEYWORDS, KeywordLists, classify
from msgine.server.errors import InvalidRequest


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stop",
        "Stop",
        "  stop ",
        "Stop.",
        "STOP!!!",
        "STOP please",
        "stop, thanks",
        "STOP\nsent from my phone",
        '"STOP"',
        "*stop*",
        "STOPALL",
        "unsubscribe",
        "Cancel",
        "end",
        "QUIT",
        "revoke",
        "optout",
        "OPT-OUT",
        "opt_out",
        "S\u200bTOP",  # zero-width space inside
        "S\u200dTOP",  # zero-width joiner inside
        "\u202eSTOP",  # bidi override in front
        "\ufeffstop",  # byte-order mark in front
        "\uff33\uff34\uff2f\uff30",  # full-width "STOP"
        "\u017ftop",  # long s case-folds to s
    ],
)
def test_opt_out(body: str) -> None:
    assert classify(body) == "opt_out"


@pytest.mark.parametrize("body", ["START", "start", "Unstop", "YES", "yes!", " Yes please"])
def test_opt_in(body: str) -> None:
    assert classify(body) == "opt_in"


@pytest.mark.parametrize("body", ["HELP", "help?", "Info", "info please"])
def test_help(body: str) -> None:
    assert classify(body) == "help"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   ",
        "!!!",
        "unstoppable",
        "stopped",
        "Please stop",
        "don't stop",
        "non-stop",
        "STO P",
        "12 STOP",
        "ends",
        "yesterday",
        "helpful",
        "opt out",  # two words; the first is "opt"
        "\u0405TOP",  # Cyrillic DZE: a look-alike, not the keyword
    ],
)
def test_not_a_keyword(body: str) -> None:
    assert classify(body) is None


def test_default_lists() -> None:
    assert DEFAULT_KEYWORDS.opt_out == {
        "stop",
        "stopall",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
    }
    assert DEFAULT_KEYWORDS.opt_in == {"start", "unstop", "yes"}
    assert DEFAULT_KEYWORDS.help == {"help", "info"}


def test_account_opt_out_words_add_to_defaults() -> None:
    lists = KeywordLists.from_lists(opt_out=["Arrêt", "BASTA"])
    assert classify("arrêt", lists) == "opt_out"
    assert classify("ARRÊT", lists) == "opt_out"
    assert classify("basta!", lists) == "opt_out"
    assert classify("STOP", lists) == "opt_out"
    assert classify("YES", lists) == "opt_in"


def test_account_can_replace_opt_in_and_help() -> None:
    lists = KeywordLists.from_lists(opt_in=["SUBSCRIBE"], help=["AIDE"])
    assert classify("yes", lists) is None
    assert classify("subscribe", lists) == "opt_in"
    assert classify("aide", lists) == "help"
    assert classify("help", lists) is None
    assert classify("stop", lists) == "opt_out"


def test_from_lists_without_arguments_equals_defaults() -> None:
    assert KeywordLists.from_lists() == DEFAULT_KEYWORDS


def test_direct_construction_is_normalised() -> None:
    lists = KeywordLists(
        opt_out=frozenset({"Halt"}), opt_in=frozenset({"GO"}), help=frozenset({"Hilfe"})
    )
    assert lists.opt_out == {"halt"}
    assert classify("HALT", lists) == "opt_out"
    assert classify("go", lists) == "opt_in"
    assert classify("stop", lists) is None


@pytest.mark.parametrize("word", ["", "  ", "two words", "stop!", "a" * 33])
def test_invalid_keyword(word: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        KeywordLists.from_lists(opt_out=[word])
    assert caught.value.details == {"field": "optOut"}


def test_keyword_in_two_lists_is_rejected() -> None:
    with pytest.raises(InvalidRequest):
        KeywordLists.from_lists(opt_out=["yes"])
    with pytest.raises(InvalidRequest):
        KeywordLists.from_lists(opt_in=["start", "help"])
