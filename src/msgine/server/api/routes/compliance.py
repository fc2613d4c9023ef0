"""Routes: consents, suppressions, privacy requests and the account's compliance policy.

Every route needs the ``compliance:manage`` scope and acts on the caller's own account only,
and on the caller's mode only: a test key's consents, opt-outs, exports and erasures are the
test world's (the CLI, the operator, acts on both).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from msgine.server.accounts import Ceilings
from msgine.server.api._deps import actor_of, require, runtime_of
from msgine.server.api._openapi import answers, with_body
from msgine.server.api._schemas import (
    AccountPolicy,
    ConsentSummary,
    PrivacyErased,
    PrivacyExport,
    SuppressionPage,
    SuppressionRemoved,
    policy_changes_schema,
)
from msgine.server.api._text import PlainText
from msgine.server.compliance import (
    Pricing,
    change_policy,
    consent_summary,
    erase_number,
    export_number,
    grant_consent,
    inbound_handler,
    read_policy,
    suppression_page,
    unsuppress,
    withdraw_consent,
)
from msgine.server.events import iso
from msgine.server.keys import Principal
from msgine.server.messages import normalize_number
from msgine.server.runtime import Runtime

router = APIRouter(tags=["compliance"])

#: A phone number as a path or query value: digits with an optional leading "+", and spaces,
#: dots, dashes and brackets; anything else is refused before it is parsed (and a number
#: without its country code after parsing, as ``invalid_phone_number``).
PHONE_PATTERN = r"^\+?[0-9 ().\-]{3,32}$"
PHONE: dict[str, Any] = {
    "min_length": 3,
    "max_length": 32,
    "pattern": PHONE_PATTERN,
    "examples": ["+256701521269"],
}
PhonePath = Annotated[str, Path(**PHONE)]
PhoneQuery = Annotated[str, Query(**PHONE)]
can_manage = require("compliance:manage")
Caller = Annotated[Principal, Depends(can_manage)]


class ConsentBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"purpose": "marketing", "source": "web sign-up form"}]},
    )

    purpose: Literal["marketing", "transactional"]
    source: PlainText = Field(min_length=1, max_length=200)
    evidence: StrictStr | dict[str, Any] | None = None


class EraseBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    phone: StrictStr = Field(
        min_length=3, max_length=32, pattern=PHONE_PATTERN, examples=["+256701521269"]
    )


def _number_of(phone: str, request: Request, principal: Principal) -> tuple[Runtime, str, str]:
    """The runtime, the path's number in E.164 and its blind index in the caller's account."""
    runtime = runtime_of(request)
    number = normalize_number(phone, field="phone")
    return runtime, number, runtime.vault.blind_index(principal.account_id, number)


# --- consents -----------------------------------------------------------------------------


@router.put(
    "/consents/{phone}",
    summary="Record a consent for a number",
    operation_id="put_consent",
    **answers(ConsentSummary, 413),
)
async def put_consent(
    phone: PhonePath, body: ConsentBody, request: Request, principal: Caller
) -> dict[str, Any]:
    runtime, number, index = _number_of(phone, request, principal)
    actor, now = actor_of(request, principal), runtime.now()

    def apply(conn: Any) -> dict[str, Any]:
        grant_consent(
            conn,
            runtime.vault,
            account_id=principal.account_id,
            mode=principal.mode,
            phone=number,
            phone_index=index,
            purpose=body.purpose,
            source=body.source.strip(),
            evidence=body.evidence,
            now=now,
            actor=actor,
        )
        return _summary(conn, runtime, principal, number, index)

    return await runtime.db.awrite(apply)


def _summary(
    conn: Any, runtime: Runtime, principal: Principal, number: str, index: str
) -> dict[str, Any]:
    return consent_summary(conn, runtime.vault, principal.account_id, principal.mode, number, index)


@router.get(
    "/consents/{phone}",
    summary="A number's consents and their history",
    operation_id="get_consent",
    **answers(ConsentSummary),
)
async def get_consent(phone: PhonePath, request: Request, principal: Caller) -> dict[str, Any]:
    runtime, number, index = _number_of(phone, request, principal)
    return await runtime.db.aread(lambda conn: _summary(conn, runtime, principal, number, index))


@router.delete(
    "/consents/{phone}",
    summary="Withdraw a number's consent (one purpose or all)",
    operation_id="delete_consent",
    **answers(ConsentSummary, 404),
)
async def delete_consent(
    phone: PhonePath,
    request: Request,
    principal: Caller,
    purpose: Annotated[Literal["marketing", "transactional"] | None, Query()] = None,
) -> dict[str, Any]:
    runtime, number, index = _number_of(phone, request, principal)
    actor, now = actor_of(request, principal), runtime.now()

    def apply(conn: Any) -> dict[str, Any]:
        withdraw_consent(
            conn,
            runtime.vault,
            account_id=principal.account_id,
            mode=principal.mode,
            phone_index=index,
            purpose=purpose,
            now=now,
            actor=actor,
        )
        return _summary(conn, runtime, principal, number, index)

    return await runtime.db.awrite(apply)


# --- suppressions -------------------------------------------------------------------------


@router.get(
    "/suppressions",
    summary="Numbers this account must not message, newest first",
    operation_id="list_suppressions",
    **answers(SuppressionPage),
)
async def get_suppressions(
    request: Request,
    principal: Caller,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    runtime = runtime_of(request)
    return await runtime.db.aread(
        lambda conn: suppression_page(
            conn, runtime.vault, principal.account_id, principal.mode, page=page, limit=limit
        )
    )


@router.delete(
    "/suppressions/{phone}",
    summary="Take a number off the suppression list",
    operation_id="delete_suppression",
    **answers(SuppressionRemoved, 404),
)
async def delete_suppression(
    phone: PhonePath, request: Request, principal: Caller
) -> dict[str, Any]:
    runtime, number, index = _number_of(phone, request, principal)
    actor, now = actor_of(request, principal), runtime.now()

    await runtime.db.awrite(
        lambda conn: unsuppress(
            conn,
            runtime.vault,
            actor,
            account_id=principal.account_id,
            mode=principal.mode,
            phone_index=index,
            now=now,
        )
    )
    return {"phone": number, "suppressed": False, "removedAt": iso(now)}


# --- privacy ------------------------------------------------------------------------------


@router.get(
    "/privacy/export",
    summary="Everything this account holds about a number",
    operation_id="privacy_export",
    **answers(PrivacyExport),
)
async def privacy_export(request: Request, principal: Caller, phone: PhoneQuery) -> dict[str, Any]:
    runtime = runtime_of(request)
    number = normalize_number(phone, field="phone")
    actor, now = actor_of(request, principal), runtime.now()
    found = await runtime.db.awrite(
        lambda conn: export_number(
            conn,
            runtime.vault,
            [principal.account_id],
            number,
            actor=actor,
            now=now,
            modes=(principal.mode,),
        )
    )
    return {"phone": number, "exportedAt": iso(now), **found[0]}


@router.post(
    "/privacy/erase",
    summary="Erase a number from this account",
    operation_id="privacy_erase",
    **answers(PrivacyErased, 413),
)
async def privacy_erase(body: EraseBody, request: Request, principal: Caller) -> dict[str, Any]:
    runtime = runtime_of(request)
    number = normalize_number(body.phone, field="phone")
    actor = actor_of(request, principal)
    results = await asyncio.to_thread(
        erase_number,
        runtime,
        [principal.account_id],
        number,
        actor=actor,
        modes=(principal.mode,),
    )
    return {"erased": True, **results[0]}


# --- policy -------------------------------------------------------------------------------


@router.get(
    "/account/policy",
    summary="This account's compliance and retention policy",
    operation_id="get_policy",
    **answers(AccountPolicy),
)
async def get_policy(request: Request, principal: Caller) -> dict[str, Any]:
    runtime = runtime_of(request)
    return await runtime.db.aread(lambda conn: read_policy(conn, principal.account_id))


@router.patch(
    "/account/policy",
    summary="Change some of this account's policy fields",
    operation_id="patch_policy",
    **with_body(answers(AccountPolicy, 413), policy_changes_schema()),
)
async def patch_policy(
    request: Request, principal: Caller, changes: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    runtime = runtime_of(request)
    actor, now = actor_of(request, principal), runtime.now()
    return await runtime.db.awrite(
        lambda conn: change_policy(
            conn,
            runtime.vault,
            principal.account_id,
            changes,
            actor=actor,
            now=now,
            ceilings=Ceilings.of(runtime.settings),
        )
    )


# --- inbound keywords ---------------------------------------------------------------------


def install(app: Any) -> None:
    """Answer STOP/START/HELP in every inbound message."""
    settings = app.state.runtime.settings
    handler = inbound_handler(Pricing(settings.price_per_segment, settings.currency))
    app.state.inbound_handlers.append(handler)
