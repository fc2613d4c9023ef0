"""Inbound keywords: recognising opt-out (STOP), opt-in (START) and HELP replies.

Matching errs towards honouring an opt-out: the first word is compared after removing invisible
characters, width variants and case, so "S\\u200bTOP", full-width "STOP" and "Stop." all count.
Only the first word counts, so "Please don't stop" is not an opt-out and "unstoppable" is not STOP.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from msgine.server.errors import InvalidRequest
from msgine.server.messages import sanitize

Category = Literal["opt_out", "opt_in", "help"]

# A word: letters and digits, optionally joined by hyphens or underscores ("OPT-OUT").
_FIRST_WORD = re.compile(r"[^\W_]+(?:[-_][^\W_]+)*")
_JOINERS = re.compile(r"[-_]")
_MAX_KEYWORD_LENGTH = 32


def _fold(word: str) -> str:
    """The comparison form: NFKC (full-width letters), hyphens removed, case-folded."""
    return _JOINERS.sub("", unicodedata.normalize("NFKC", word)).casefold()


def _fold_all(words: Iterable[str], field: str) -> frozenset[str]:
    folded = set()
    for word in words:
        key = _fold(word.strip()) if isinstance(word, str) else ""
        if not key or len(key) > _MAX_KEYWORD_LENGTH or not _FIRST_WORD.fullmatch(key):
            raise InvalidRequest(
                "Each keyword must be one word of letters and digits.", details={"field": field}
            )
        folded.add(key)
    return frozenset(folded)


@dataclass(frozen=True)
class KeywordLists:
    """Keywords per category, stored in comparison form (any case and width may be given)."""

    opt_out: frozenset[str]
    opt_in: frozenset[str]
    help: frozenset[str]

    def __post_init__(self) -> None:
        opt_out = _fold_all(self.opt_out, "optOut")
        opt_in = _fold_all(self.opt_in, "optIn")
        help_ = _fold_all(self.help, "help")
        if opt_out & opt_in or opt_out & help_ or opt_in & help_:
            raise InvalidRequest(
                "A keyword may belong to only one list.", details={"field": "keywords"}
            )
        object.__setattr__(self, "opt_out", opt_out)
        object.__setattr__(self, "opt_in", opt_in)
        object.__setattr__(self, "help", help_)

    @classmethod
    def from_lists(
        cls,
        *,
        opt_out: Iterable[str] = (),
        opt_in: Iterable[str] | None = None,
        help: Iterable[str] | None = None,
    ) -> KeywordLists:
        """An account's lists.

        Opt-out words are added to the defaults, never replace them: a recipient's STOP must
        always work. Opt-in and help lists replace the defaults when given, so an account that
        asks "Reply YES to confirm" can take YES out of the opt-in list.
        """
        return cls(
            opt_out=DEFAULT_KEYWORDS.opt_out | frozenset(opt_out),
            opt_in=DEFAULT_KEYWORDS.opt_in if opt_in is None else frozenset(opt_in),
            help=DEFAULT_KEYWORDS.help if help is None else frozenset(help),
        )


DEFAULT_KEYWORDS = KeywordLists(
    opt_out=frozenset(
        {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
    ),
    opt_in=frozenset({"START", "UNSTOP", "YES"}),
    help=frozenset({"HELP", "INFO"}),
)


def classify(body: str, lists: KeywordLists = DEFAULT_KEYWORDS) -> Category | None:
    """The category of an inbound message's first word, or None.

    Leading punctuation or symbols are skipped and the word ends at the first character that
    is not a letter, digit, hyphen or underscore, so "  stop ", "Stop." and "STOP please" are
    opt-outs. Should a word somehow be in two lists, opt-out wins.
    """
    match = _FIRST_WORD.search(sanitize(body))
    if match is None:
        return None
    word = _fold(match.group())
    if word in lists.opt_out:
        return "opt_out"
    if word in lists.help:
        return "help"
    if word in lists.opt_in:
        return "opt_in"
    return None
