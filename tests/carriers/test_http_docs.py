"""docs/carriers-http.md shows the code's own tables and options (every row, both ways)."""

from __future__ import annotations

from pathlib import Path

from carriers_helpers import doc_rows

from msgine.server.carriers._upstream import UpstreamOptions
from msgine.server.carriers.msgine_api import (
    RECEIPT_STATES,
    RECIPIENT_ANSWERS,
    REQUEST_ANSWERS,
    MsgineOptions,
)

DOC = Path(__file__).parents[2] / "docs" / "carriers-http.md"
TEXT = DOC.read_text(encoding="utf-8")


def _rows(first_header: str) -> list[list[str]]:
    return doc_rows(DOC, first_header)


def _code(cell: str) -> str:
    return "*" if cell.startswith("any") else cell


def _outcome(cell: str) -> str:
    return cell.split()[0].rstrip(",")


def test_the_request_answer_table_is_the_code_s() -> None:
    documented = {
        (int(status), _code(code)): (_outcome(outcome), error or None)
        for status, code, outcome, error in _rows("HTTP status")
    }
    actual = {key: (rule.outcome, rule.error_code) for key, rule in REQUEST_ANSWERS.items()}
    assert documented == actual


def test_the_recipient_answer_table_is_the_code_s() -> None:
    documented = {
        (status, _code(code)): (_outcome(outcome), error or None, "suppressed" in outcome)
        for status, code, outcome, error in _rows("recipient status")
    }
    actual = {
        key: (rule.outcome, rule.error_code, rule.opted_out)
        for key, rule in RECIPIENT_ANSWERS.items()
    }
    assert documented == actual


def test_the_event_table_is_the_code_s() -> None:
    documented = {
        event: cell.split()[1].strip("`")
        for event, cell in _rows("MsGine event")
        if cell.startswith("receipt")
    }
    assert documented == RECEIPT_STATES


def test_every_option_is_documented() -> None:
    options = {row[0] for row in _rows("option")}
    assert options == set(UpstreamOptions.model_fields)
    own = set(MsgineOptions.model_fields) - set(UpstreamOptions.model_fields)
    assert all(f"`{name}`" in TEXT for name in own)
