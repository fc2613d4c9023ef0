"""docs/carriers-smpp.md shows the code's own tables: command statuses and receipt states."""

from __future__ import annotations

import re
from pathlib import Path

from carriers_helpers import doc_rows

from msgine.server.carriers.smpp import COMMAND_STATUSES, RECEIPT_STATES
from msgine.server.carriers.smpp._receipts import MESSAGE_STATES

DOC = Path(__file__).parents[2] / "docs" / "carriers-smpp.md"


def _rows(first_header: str) -> list[list[str]]:
    return doc_rows(DOC, first_header)


def test_the_command_status_table_is_the_codes() -> None:
    documented = {
        int(code, 16): (name, outcome, error)
        for name, code, outcome, error in _rows("command status")
    }
    actual = {
        code: (status.name, status.outcome, status.error_code)
        for code, status in COMMAND_STATUSES.items()
    }
    assert documented == actual


def test_the_receipt_table_is_the_codes() -> None:
    documented = {
        state: (int(tlv), status, None if error == "-" else error)
        for state, tlv, status, error in _rows("receipt `stat:`")
    }
    by_state = {state: value for value, state in MESSAGE_STATES.items()}
    actual = {state: (by_state[state], *RECEIPT_STATES[state]) for state in RECEIPT_STATES}
    assert documented == actual


def test_every_option_is_documented() -> None:
    from msgine.server.carriers.smpp import SmppOptions

    text = DOC.read_text(encoding="utf-8")
    options = re.findall(r"^\| `([a-z_0-9]+)`(?:, `([a-z_0-9]+)`)? \|", text, re.MULTILINE)
    documented = {name for pair in options for name in pair if name}
    assert documented == set(SmppOptions.model_fields)
