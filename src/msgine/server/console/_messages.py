"""``/console/messages``: search (id, status, dates, recipient) and one message's detail with
each recipient's status timeline and the webhook deliveries its events caused.

A recipient is searched through its blind index (``search_messages``), and a search naming a
number is a form POST, so the number stays out of URLs (browser history, proxies' logs).
Numbers are shown masked, each with a reveal button for the roles allowed (kind
``recipient``, registered by ``_reveal``; audited).
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from msgine.server.messages import (
    MESSAGE_STATUSES,
    MessageDetail,
    MessageFilter,
    message_detail,
    search_messages,
)
from msgine.server.webhooks import message_deliveries

from ._pages import day_of, end_of, mode_of, start_of, text_of
from ._web import ConsoleUser, render, require, runtime_of

router = APIRouter()
PAGE_SIZE = 25
FIELDS = ("id", "status", "since", "until", "mode", "recipient")
Field = Annotated[str | None, Form(max_length=64)]


@router.get("/messages")
async def messages_page(
    request: Request,
    id: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    mode: str | None = None,
    cursor: str | None = None,
    user: ConsoleUser = Depends(require("console:view")),
) -> Response:
    form = {"id": id, "status": status, "since": since, "until": until, "mode": mode}
    return await _search(request, user, form, cursor)


@router.post("/messages")
async def messages_search(
    request: Request,
    id: Field = None,
    status: Field = None,
    since: Field = None,
    until: Field = None,
    mode: Field = None,
    recipient: Field = None,
    cursor: Annotated[str | None, Form(max_length=200)] = None,
    user: ConsoleUser = Depends(require("console:view")),
) -> Response:
    """The same search as a form post: the one way to search by number."""
    form = {"id": id, "status": status, "since": since, "until": until, "mode": mode}
    return await _search(request, user, {**form, "recipient": recipient}, cursor)


async def _search(
    request: Request, user: ConsoleUser, form: dict[str, str | None], cursor: str | None
) -> Response:
    first, last = day_of(form["since"], "since"), day_of(form["until"], "until")
    wanted = MessageFilter(
        account_id=user.account_id,
        mode=mode_of(form["mode"], default=None),
        message_id=text_of(form["id"]),
        status=text_of(form["status"]),
        since=start_of(first) if first else None,
        until=end_of(last) if last else None,
        recipient=text_of(form.get("recipient")),
    )
    runtime = runtime_of(request)
    page = await runtime.db.aread(
        lambda conn: search_messages(
            conn, runtime.vault, wanted, limit=PAGE_SIZE, cursor=text_of(cursor)
        )
    )
    return render(
        request,
        "messages.html",
        page=page,
        form=form,
        kept={k: v for k, v in form.items() if v},
        statuses=MESSAGE_STATUSES,
    )


@router.get("/messages/{message_id}")
async def message_page(
    request: Request, message_id: str, user: ConsoleUser = Depends(require("console:view"))
) -> Response:
    runtime = runtime_of(request)

    def read(conn: sa.Connection) -> tuple[MessageDetail, list[dict[str, Any]]]:
        detail = message_detail(conn, runtime.vault, user.account_id, message_id)
        return detail, message_deliveries(conn, user.account_id, message_id)

    detail, deliveries = await runtime.db.aread(read)
    return render(request, "message.html", message=detail, deliveries=deliveries)
