"""Reading and changing an account's policy, with every field checked before it is stored.

A stored policy is read on every send and every inbound message; a value that fails there
(an unknown time zone, a template without ``{org}``) would break them. So the whole policy is
validated here, once, and a bad change is refused with ``invalid_request`` naming the field.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from pydantic import ValidationError

from msgine.server.accounts import (
    OPERATOR_FIELDS,
    AccountPolicy,
    Ceilings,
    policy_of,
    update_policy,
)
from msgine.server.audit import Actor, record
from msgine.server.compliance._identification import DEFAULT_OPT_OUT_TEMPLATE, render_footer
from msgine.server.compliance._inbound import KEYWORD_FIELDS, keyword_lists
from msgine.server.compliance._quiet_hours import QuietWindow
from msgine.server.crypto import Vault
from msgine.server.errors import Forbidden, InvalidRequest
from msgine.server.ratelimit import parse_limits

#: The JSON names a PATCH may use (camelCase, as the API shows them).
FIELDS = (
    frozenset((info.alias or name) for name, info in AccountPolicy.model_fields.items())
    - OPERATOR_FIELDS
)


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, details={"field": field})


def _check_clock(field: str, value: str) -> time:
    try:
        parsed = time.fromisoformat(value)
    except ValueError:
        raise _invalid(field, "Use a 24-hour time such as 08:00.") from None
    if parsed.tzinfo is not None:
        raise _invalid(field, "Quiet hours are local times, without a zone.")
    return parsed


def _check_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise _invalid("timezone", "Unknown time zone; use an IANA name.") from None


def _check_limits(field: str, value: str | None) -> None:
    if value is None:
        return
    try:
        parse_limits(value)
    except ValueError as exc:
        raise _invalid(field, str(exc)) from None


def check_policy(policy: AccountPolicy) -> None:
    """Everything pydantic cannot see: zones, windows, templates, keywords, limits."""
    _check_zone(policy.timezone)
    start = _check_clock("quietHoursStart", policy.quiet_hours_start)
    end = _check_clock("quietHoursEnd", policy.quiet_hours_end)
    if start == end:
        raise _invalid("quietHoursEnd", "The quiet-hours window needs different start and end.")
    QuietWindow(start, end)
    render_footer(policy.organization_name, policy.opt_out_template or DEFAULT_OPT_OUT_TEMPLATE)
    unknown = sorted(set(policy.keywords or {}) - set(KEYWORD_FIELDS))
    if unknown:
        raise InvalidRequest(
            "Keyword lists are optOut, optIn and help.",
            details={"field": "keywords", "unknown": unknown},
        )
    keyword_lists(policy)
    _check_limits("rateLimit", policy.rate_limit)
    _check_limits("recipientRateLimit", policy.recipient_rate_limit)


def view(policy: AccountPolicy) -> dict[str, Any]:
    return policy.model_dump(by_alias=True)


def read(conn: sa.Connection, account_id: str) -> dict[str, Any]:
    return view(policy_of(conn, account_id))


def change(
    conn: sa.Connection,
    vault: Vault,
    account_id: str,
    changes: dict[str, Any],
    *,
    actor: Actor,
    now: datetime,
    ceilings: Ceilings,
) -> dict[str, Any]:
    """Apply a partial update (camelCase names), validate the result, store it and audit it.

    Limits may only tighten the operator's ``ceilings``, window by window (403 naming each
    field that would exceed them); the operator's own fields cannot be changed here at all.
    """
    reserved = sorted(set(changes) & OPERATOR_FIELDS)
    if reserved:
        raise Forbidden(
            f"Only the operator sets {', '.join(reserved)}.", details={"exceeds": reserved}
        )
    unknown = sorted(set(changes) - FIELDS)
    if unknown:
        raise InvalidRequest("Unknown policy fields.", details={"unknown": unknown})
    current = policy_of(conn, account_id).model_dump(by_alias=True)
    try:
        candidate = AccountPolicy.model_validate({**current, **changes})
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]}
            for err in exc.errors()
        ]
        raise InvalidRequest("Invalid policy.", details={"errors": problems}) from None
    check_policy(candidate)
    exceeded = ceilings.exceeded(candidate, changes)
    if exceeded:
        raise Forbidden(
            f"Account limits may only tighten the operator's: {', '.join(exceeded)}.",
            details={"exceeds": exceeded},
        )
    stored = update_policy(conn, account_id, changes)
    record(
        conn,
        vault,
        actor,
        "account.policy_updated",
        now=now,
        account_id=account_id,
        details={"fields": sorted(changes)},
    )
    return view(stored)
