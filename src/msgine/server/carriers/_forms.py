"""Form-encoded callback bodies (Africa's Talking and Twilio post
``application/x-www-form-urlencoded``), read one way for every kind."""

from __future__ import annotations

from urllib.parse import parse_qsl

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
    """The form's fields by name (a repeated name keeps its first value)."""
    fields: dict[str, str] = {}
    for name, value in form_pairs(body):
        fields.setdefault(name, value)
    return fields
