"""Delivery receipts in deliver_sm: the text format and the TLVs, and what each state means.

The text is the de-facto format of SMPP 3.4 Appendix B::

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
    err:E text:...

SMSCs vary (case, missing fields, seconds in the dates, ids longer than ten characters), so
fields are found by name in any order. The ``receipted_message_id`` and ``message_state`` TLVs
win over the text when both are present. docs/carriers-smpp.md shows the state table; a test
checks the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from msgine.server.carriers._base import Receipt, ReceiptStatus
from msgine.server.carriers.smpp import _pdu

#: state word -> (our status, our error code). The one table.
RECEIPT_STATES: dict[str, tuple[ReceiptStatus, str | None]] = {
    "DELIVRD": ("delivered", None),
    "ACCEPTD": ("sent", None),
    "ENROUTE": ("sent", None),
    "UNDELIV": ("failed", "undeliverable"),
    "EXPIRED": ("failed", "expired"),
    "REJECTD": ("failed", "rejected"),
    "DELETED": ("failed", "deleted"),
    "UNKNOWN": ("unknown", None),
}
#: message_state TLV values (SMPP 3.4, 5.2.28) by state word.
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
# Full words some SMSCs write instead of the 7-letter forms.
_ALIASES = {
    "DELIVERED": "DELIVRD",
    "UNDELIVERABLE": "UNDELIV",
    "REJECTED": "REJECTD",
    "ACCEPTED": "ACCEPTD",
}
_NAMES = r"id|sub|dlvrd|submit date|done date|stat|err|text"
_FIELD = re.compile(rf"(?i)\b({_NAMES})\s*:\s*")
_DATE = re.compile(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?")
_MAX_ID = 64


class NotAReceipt(ValueError):
    """The deliver_sm carries no receipt this module can read."""


@dataclass(frozen=True)
class ReceiptFields:
    """What the text says, before mapping: fields it lacks are None."""

    message_id: str | None
    state: str | None
    error: str | None
    done_at: datetime | None


def parse_receipt_text(text: str) -> ReceiptFields:
    """The fields of a receipt text; never raises for any string. A field's value runs to the
    next field name (one regex pass, linear in the text)."""
    fields: dict[str, str] = {}
    matches = list(_FIELD.finditer(text))
    for index, match in enumerate(matches):
        name = match.group(1).lower()
        if name == "text":  # the message's first characters: personal data, never kept
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        fields.setdefault(name, text[match.end() : end].strip())
    state = fields.get("stat")
    if state is not None:
        state = state.upper()
        state = _ALIASES.get(state, state)
    return ReceiptFields(
        message_id=fields.get("id") or None,
        state=state or None,
        error=fields.get("err") or None,
        done_at=_receipt_date(fields.get("done date")),
    )


def _receipt_date(value: str | None) -> datetime | None:
    """YYMMDDhhmm[ss] as UTC (SMPP receipt dates carry no zone; UTC is the usual reading)."""
    if not value:
        return None
    match = _DATE.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    try:
        return datetime(2000 + year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def receipt_from(text: str, tlvs: dict[int, bytes]) -> Receipt:
    """The receipt a deliver_sm carries; raises :class:`NotAReceipt` when it names no message
    id or no state this table knows."""
    fields = parse_receipt_text(text)
    message_id = fields.message_id
    raw_id = tlvs.get(_pdu.TLV_RECEIPTED_MESSAGE_ID)
    if raw_id is not None:
        message_id = raw_id.split(b"\x00", 1)[0].decode("ascii", "replace") or message_id
    state = fields.state
    raw_state = tlvs.get(_pdu.TLV_MESSAGE_STATE)
    if raw_state is not None and len(raw_state) == 1 and raw_state[0] in MESSAGE_STATES:
        state = MESSAGE_STATES[raw_state[0]]
    if not message_id or len(message_id) > _MAX_ID:
        raise NotAReceipt("no message id")
    if state not in RECEIPT_STATES:
        raise NotAReceipt("unknown state")
    status, error_code = RECEIPT_STATES[state]
    return Receipt(
        carrier_message_id=message_id,
        status=status,
        carrier_state=state,
        error_code=error_code,
        done_at=fields.done_at,
    )
