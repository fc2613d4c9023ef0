"""Form-encoded callback bodies (Africa's Talking and Twilio post
``application/x-www-form-urlencoded``), read one way for every kind."""

from __future__ import annotations

from urllib.parse import parse_qsl

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
