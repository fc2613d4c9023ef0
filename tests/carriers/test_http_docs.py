"""docs/carriers-http.md shows the code's own tables and options (every row, both ways)."""

from __future__ import annotations

from carriers_helpers import CARRIERS_HTTP_DOC, answer_code, answer_outcome, http_doc_rows

from msgine.server.carriers._upstream import UpstreamOptions
from msgine.server.carriers.msgine_api import (
    RECEIPT_STATES,
    RECIPIENT_ANSWERS,
    REQUEST_ANSWERS,
    MsgineOptions,
)

TEXT = CARRIERS_HTTP_DOC.read_text(encoding="utf-8")


def test_the_request_answer_table_is_the_code_s() -> None:
    documented = {
        (int(status), answer_code(code)): (answer_outcome(outcome), error or None)
        for status, code, outcome, error in http_doc_rows("HTTP status")
    }
    actual = {key: (rule.outcome, rule.error_code) for key, rule in REQUEST_ANSWERS.items()}
    assert documented == actual


def test_the_recipient_answer_table_is_the_code_s() -> None:
    documented = {
        (status, answer_code(code)): (
            answer_outcome(outcome),
            error or None,
            "suppressed" in outcome,
        )
        for status, code, outcome, error in http_doc_rows("recipient status")
    }
    actual = {
        key: (rule.outcome, rule.error_code, rule.opted_out)
        for key, rule in RECIPIENT_ANSWERS.items()
    }
    assert documented == actual


def test_the_event_table_is_the_code_s() -> None:
    documented = {
        event: cell.split()[1].strip("`")
        for event, cell in http_doc_rows("MsGine event")
        if cell.startswith("receipt")
    }
    assert documented == RECEIPT_STATES


def test_every_option_is_documented() -> None:
    options = {row[0] for row in http_doc_rows("option")}
    assert options == set(UpstreamOptions.model_fields)
    own = set(MsgineOptions.model_fields) - set(UpstreamOptions.model_fields)
    assert all(f"`{name}`" in TEXT for name in own)
