"""Form-encoded callback bodies (Africa's Talking and Twilio post
``application/x-www-form-urlencoded``), read one way for every kind: each kind names its
fields (:class:`FormNames`) and gives its tables (:class:`ReceiptTables`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from msgine.server.carriers._base import InboundMessage, Receipt, ReceiptStatus
from msgine.server.errors import InvalidRequest

#: More fields than any provider's callback carries: a body past it is not the provider's.
MAX_FIELDS = 100


class MalformedForm(ValueError):
    """Not a form body a provider would send (not UTF-8, too many fields)."""


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of a form body, in order, repeats kept."""
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise MalformedForm("not a form body") from None


def form_fields(body: bytes) -> dict[str, str]:
    """The form's fields by name (a repeated name keeps its first value); 400
    ``invalid_request`` for a body that is not a form."""
    try:
        pairs = form_pairs(body)
    except MalformedForm:
        raise InvalidRequest("Not a form-encoded callback.") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def required(fields: dict[str, str], name: str) -> str:
    """A field the callback cannot do without (400 ``invalid_request`` naming it)."""
    value = fields.get(name, "").strip()
    if not value:
        raise InvalidRequest(f"The callback has no {name}.", details={"field": name})
    return value


def status_word(value: str) -> str:
    """A provider's status word as kept in history: its ASCII letters and digits only."""
    return "".join(ch for ch in value if ch.isascii() and ch.isalnum())[:32]


_ID_LENGTH = 64


@dataclass(frozen=True)
class FormNames:
    """Where a provider's callbacks put what the gateway reads."""

    message_id: str
    #: Receipts: the state word, the failure word, the recipient's number.
    state: str
    error: str
    recipient: str
    #: Inbound messages: who texted, which number they texted, the text.
    sender: str
    texted: str
    text: str


@dataclass(frozen=True)
class ReceiptTables:
    """A kind's receipt tables: its state words, and for a failed receipt its error words
    (our error code, and whether the recipient opted out)."""

    states: Mapping[str, ReceiptStatus]
    errors: Mapping[str, tuple[str, bool]]
    unknown_error: tuple[str, bool]


def form_receipt(fields: dict[str, str], names: FormNames, tables: ReceiptTables) -> Receipt:
    """A receipt; a state the table lacks is ``unknown`` (kept in history, changes nothing),
    a failure with no error word is looked up by its state."""
    state = status_word(required(fields, names.state))
    status: ReceiptStatus = tables.states.get(state, "unknown")
    error_code, opted_out = None, False
    if status == "failed":
        key = status_word(fields.get(names.error, "")) or state
        error_code, opted_out = tables.errors.get(key, tables.unknown_error)
    return Receipt(
        carrier_message_id=required(fields, names.message_id)[:_ID_LENGTH],
        status=status,
        carrier_state=state or "unknown",
        error_code=error_code,
        to=fields.get(names.recipient) or None,
        opted_out=opted_out,
    )


def form_inbound(fields: dict[str, str], names: FormNames) -> InboundMessage:
    return InboundMessage(
        sender=required(fields, names.sender),
        to=fields.get(names.texted) or None,
        text=fields.get(names.text, ""),
        carrier_message_id=(fields.get(names.message_id) or "")[:_ID_LENGTH] or None,
    )
