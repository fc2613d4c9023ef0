"""Sender identification footer for marketing messages."""

from __future__ import annotations

import random

import pytest

from msgine.server.compliance._identification import (
    DEFAULT_OPT_OUT_TEMPLATE,
    add_identification,
    render_footer,
)
from msgine.server.errors import InvalidRequest


def test_default_footer_is_appended() -> None:
    assert DEFAULT_OPT_OUT_TEMPLATE == "{org}: Reply STOP to opt out"
    assert add_identification("Sale: 20% off today", "Acme") == (
        "Sale: 20% off today\nAcme: Reply STOP to opt out"
    )


def test_already_identified_is_unchanged() -> None:
    text = "Acme sale today. Reply stop to opt out"
    assert add_identification(text, "Acme") == text
    text = "ACME: big sale. reply  STOP to end"
    assert add_identification(text, "Acme") == text


def test_only_org_missing_gets_the_name_in_front() -> None:
    assert add_identification("Big sale. Reply STOP to opt out", "Acme") == (
        "Acme: Big sale. Reply STOP to opt out"
    )


def test_only_opt_out_missing_gets_the_footer() -> None:
    assert add_identification("Acme sale today", "Acme") == (
        "Acme sale today\nAcme: Reply STOP to opt out"
    )


def test_org_must_appear_as_a_word() -> None:
    # "Acmeville" does not name "Acme".
    assert add_identification("Acmeville sale. Reply STOP to opt out", "Acme") == (
        "Acme: Acmeville sale. Reply STOP to opt out"
    )


def test_stop_without_reply_is_not_an_opt_out_instruction() -> None:
    assert add_identification("Acme: don't stop shopping", "Acme") == (
        "Acme: don't stop shopping\nAcme: Reply STOP to opt out"
    )


def test_empty_text_becomes_the_footer() -> None:
    assert add_identification("  ", "Acme") == "Acme: Reply STOP to opt out"


def test_surrounding_whitespace_is_trimmed_before_appending() -> None:
    assert add_identification("Hi there \n\n", "Acme") == "Hi there\nAcme: Reply STOP to opt out"


def test_org_name_is_cleaned() -> None:
    assert render_footer("  Acme\n  Ltd\u200b ") == "Acme Ltd: Reply STOP to opt out"


def test_custom_template() -> None:
    template = "Msgs from {org}. Text STOP to quit, HELP for help."
    assert add_identification("Sale", "Acme", template) == (
        "Sale\nMsgs from Acme. Text STOP to quit, HELP for help."
    )


def test_org_with_regex_characters() -> None:
    org = "A+B (Shop) Ltd."
    once = add_identification("Sale", org)
    assert once == "Sale\nA+B (Shop) Ltd.: Reply STOP to opt out"
    assert add_identification(once, org) == once


@pytest.mark.parametrize(
    ("text", "org", "template"),
    [
        ("Sale", "Acme", DEFAULT_OPT_OUT_TEMPLATE),
        ("Big sale. Reply STOP to opt out", "Acme", DEFAULT_OPT_OUT_TEMPLATE),
        ("Sale", "Acme", "From {org}Corp. Text STOP to quit"),  # org not a whole word here
        ("Sale", "Acme", "Stop texts from {org}: send STOP"),
        ("", "Acme", DEFAULT_OPT_OUT_TEMPLATE),
        ("Sale", "Café Ünïcode", "{org} — Reply STOP to opt out"),
    ],
)
def test_idempotent(text: str, org: str, template: str) -> None:
    once = add_identification(text, org, template)
    assert add_identification(once, org, template) == once


def test_idempotent_on_random_text() -> None:
    rng = random.Random(7)
    words = ["Acme", "acme", "sale", "Reply", "STOP", "stop", "opt", "out", "\n", "50%", "Acmes"]
    for _ in range(500):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        once = add_identification(text, "Acme")
        assert add_identification(once, "Acme") == once
        assert "acme" in once.casefold()
        assert "reply stop" in " ".join(once.casefold().split())


@pytest.mark.parametrize(
    "template",
    [
        "{org}: Reply STOP {0}",
        "{org.__class__}: Reply STOP",
        "{org}: {unsubscribe_url}",
        "{org} }",
        "{{org}}: Reply STOP",
        "Reply STOP to opt out",  # does not name the organisation
    ],
)
def test_template_with_other_braces_is_refused(template: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        add_identification("Sale", "Acme", template)
    assert caught.value.details == {"field": "template"}


def test_org_name_is_never_interpreted_as_a_template() -> None:
    assert render_footer("{org.__init__} {0}") == "{org.__init__} {0}: Reply STOP to opt out"


@pytest.mark.parametrize("org", ["", "   ", "\u200b\u202e"])
def test_empty_org_is_refused(org: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        add_identification("Sale", org)
    assert caught.value.details == {"field": "orgName"}
