"""Sender identification for marketing messages: the organisation's name and how to opt out.

Applied once more to its own output it changes nothing, so a retried or re-rendered message
never carries the footer twice.
"""

from __future__ import annotations

import re

from msgine.server.errors import InvalidRequest
from msgine.server.messages import sanitize

DEFAULT_OPT_OUT_TEMPLATE = "{org}: Reply STOP to opt out"
ORG_PLACEHOLDER = "{org}"

_OPT_OUT_PHRASE = re.compile(r"\breply\s+stop\b", re.IGNORECASE)


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, details={"field": field})


def _clean_org(org_name: str) -> str:
    """The name on one line: sanitised, inner whitespace runs collapsed to one space."""
    return " ".join(sanitize(org_name).split())


def render_footer(org_name: str, template: str = DEFAULT_OPT_OUT_TEMPLATE) -> str:
    """The footer line for ``org_name``.

    ``{org}`` is the only placeholder and is substituted by plain replacement, never
    ``str.format``, so neither the template nor the name can reach attributes or other fields.
    The template must name the organisation (contain ``{org}``) and may hold no other brace.
    """
    org = _clean_org(org_name)
    if not org:
        raise _invalid("orgName", "The organisation name is empty.")
    if ORG_PLACEHOLDER not in template:
        raise _invalid("template", "The opt-out template must contain {org}.")
    if "{" in template.replace(ORG_PLACEHOLDER, "") or "}" in template.replace(ORG_PLACEHOLDER, ""):
        raise _invalid("template", "The opt-out template may contain no placeholder but {org}.")
    return sanitize(template.replace(ORG_PLACEHOLDER, org))


def _mentions(text: str, org: str) -> bool:
    """Whether ``org`` appears in ``text`` as a whole word or phrase, ignoring case."""
    pattern = r"(?<!\w)" + re.escape(org) + r"(?!\w)"
    return re.search(pattern, text, re.IGNORECASE) is not None


def add_identification(text: str, org_name: str, template: str = DEFAULT_OPT_OUT_TEMPLATE) -> str:
    """``text`` identified as coming from ``org_name`` with opt-out instructions.

    - Both the name and an opt-out instruction ("reply STOP", any case, or the rendered footer)
      are present: unchanged.
    - Only the name is missing: "<org>: " is put in front, the usual way to brand a text; a second
      opt-out instruction would only cost a segment.
    - Otherwise: a new line with the rendered footer is appended.
    The result may be longer than the text limit; validate it after this step.
    """
    footer = render_footer(org_name, template)
    org = _clean_org(org_name)
    body = text.strip()
    if footer.casefold() in body.casefold():
        return body
    has_opt_out = _OPT_OUT_PHRASE.search(body) is not None
    if has_opt_out and _mentions(body, org):
        return body
    if has_opt_out:
        return f"{org}: {body}"
    return f"{body}\n{footer}" if body else footer
