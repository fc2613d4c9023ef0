"""docs/carriers-http.md shows the Africa's Talking and Twilio kinds' own tables and options
(every row, both ways)."""

from __future__ import annotations

from typing import Any

import pytest
from carriers_helpers import CARRIERS_HTTP_DOC, answer_code, answer_outcome, http_doc_rows

from msgine.server.carriers import africastalking, twilio
from msgine.server.carriers._upstream import UpstreamOptions

TEXT = CARRIERS_HTTP_DOC.read_text(encoding="utf-8")


def _answers(first_header: str, with_code: bool) -> dict[tuple[int, str], Any]:
    documented = {}
    for row in http_doc_rows(first_header):
        status, code, outcome, error = row if with_code else (row[0], "*", *row[-2:])
        documented[(int(status), answer_code(code))] = (
            answer_outcome(outcome),
            error or None,
            "suppressed" in outcome,
        )
    return documented


def _as_documented(table: dict[tuple[int, str], Any]) -> dict[tuple[int, str], Any]:
    return {key: (r.outcome, r.error_code, r.opted_out) for key, r in table.items()}


def test_africas_talking_answer_tables_are_the_code_s() -> None:
    assert _answers("AT HTTP status", False) == _as_documented(africastalking.REQUEST_ANSWERS)
    assert _answers("AT statusCode", False) == _as_documented(africastalking.RECIPIENT_ANSWERS)


def test_the_documented_status_names_are_the_providers() -> None:
    from providers.africastalking_server import STATUS_NAMES

    assert {int(row[0]): row[1] for row in http_doc_rows("AT statusCode")} == STATUS_NAMES


def test_twilio_answer_table_is_the_code_s() -> None:
    assert _answers("Twilio HTTP status", True) == _as_documented(twilio.ANSWERS)


def _receipts(first_header: str) -> dict[str, str]:
    return {state: cell.split()[1].strip("`") for state, cell in http_doc_rows(first_header)}


def _errors(first_header: str) -> dict[str, tuple[str, bool]]:
    return {
        reason: (cell.split(",")[0].strip().strip("`"), "suppressed" in cell)
        for reason, cell in http_doc_rows(first_header)
    }


@pytest.mark.parametrize(
    ("header", "table"),
    [
        ("AT report status", africastalking.RECEIPT_STATES),
        ("Twilio MessageStatus", twilio.RECEIPT_STATES),
    ],
)
def test_receipt_state_tables_are_the_code_s(header: str, table: dict[str, str]) -> None:
    assert _receipts(header) == table


@pytest.mark.parametrize(
    ("header", "table"),
    [
        ("AT failureReason", africastalking.FAILURE_REASONS),
        ("Twilio ErrorCode", twilio.DELIVERY_ERRORS),
    ],
)
def test_delivery_error_tables_are_the_code_s(
    header: str, table: dict[str, tuple[str, bool]]
) -> None:
    assert _errors(header) == table


@pytest.mark.parametrize(
    ("header", "model"),
    [
        ("AT option", africastalking.AfricasTalkingOptions),
        ("Twilio option", twilio.TwilioOptions),
    ],
)
def test_every_own_option_is_documented(header: str, model: Any) -> None:
    own = set(model.model_fields) - set(UpstreamOptions.model_fields)
    assert {row[0] for row in http_doc_rows(header)} == own


def test_every_credential_field_is_named() -> None:
    for model in (africastalking.AfricasTalkingCredentials, twilio.TwilioCredentials):
        assert all(f"`{name}`" in TEXT for name in model.model_fields)
