"""Inbound keywords: STOP-type replies opt out, START-type opt back in, HELP gets an answer.

Runs inside the transaction that stores the inbound message, so the suppression change, its
event, its audit entry and the reply are committed together with the message or not at all.
An inbound message has a mode: simulated ones (test keys) change only the test world's list.
Whoever injects a message through the API (the simulator) needs ``compliance:manage`` to lift an
opt-out with it; a real phone's START needs nothing (it is the person who opted out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from msgine.server import events
from msgine.server._ids import new_id
from msgine.server.accounts import AccountPolicy, policy_of
from msgine.server.audit import Actor, record
from msgine.server.compliance import _suppressions
from msgine.server.compliance._identification import (
    DEFAULT_OPT_OUT_TEMPLATE,
    add_identification,
    render_footer,
)
from msgine.server.compliance._keywords import Category, KeywordLists, classify
from msgine.server.crypto import Vault
from msgine.server.errors import Forbidden
from msgine.server.storage import inbound_messages

#: The audit actor of changes a recipient makes by texting a keyword.
KEYWORD_ACTOR = Actor(name="inbound:keyword")
DEFAULT_HELP_TEXT = "Reply STOP to opt out, START to opt back in."
KEYWORD_FIELDS = {"optOut": "opt_out", "optIn": "opt_in", "help": "help"}

InboundHandler = Callable[[sa.Connection, Vault, dict[str, Any], datetime], dict[str, Any]]


@dataclass(frozen=True)
class Pricing:
    """What a reply costs, as for any other message."""

    price_per_segment: int
    currency: str


def keyword_lists(policy: AccountPolicy) -> KeywordLists:
    """The account's lists: its own words over the defaults (STOP always stays)."""
    words = policy.keywords or {}
    return KeywordLists.from_lists(
        opt_out=words.get("optOut", ()), opt_in=words.get("optIn"), help=words.get("help")
    )


def _template(policy: AccountPolicy) -> str:
    return policy.opt_out_template or DEFAULT_OPT_OUT_TEMPLATE


def _opt_in_word(lists: KeywordLists) -> str | None:
    if "start" in lists.opt_in:
        return "START"
    return min(lists.opt_in).upper() if lists.opt_in else None


def opt_out_confirmation(policy: AccountPolicy, lists: KeywordLists) -> str:
    org = " ".join(policy.organization_name.split())
    text = f"{org}: You are unsubscribed and will get no more messages."
    word = _opt_in_word(lists)
    return f"{text} Reply {word} to subscribe again." if word else text


def opt_in_confirmation(policy: AccountPolicy) -> str:
    footer = render_footer(policy.organization_name, _template(policy))
    return f"You are subscribed again.\n{footer}"


def help_answer(policy: AccountPolicy) -> str:
    """The account's help text, always naming the organisation and how to opt out."""
    text = policy.help_text or DEFAULT_HELP_TEXT
    return add_identification(text, policy.organization_name, _template(policy))


@dataclass(frozen=True)
class _Context:
    conn: sa.Connection
    vault: Vault
    inbound: dict[str, Any]
    now: datetime
    policy: AccountPolicy
    lists: KeywordLists
    pricing: Pricing

    @property
    def account_id(self) -> str:
        return str(self.inbound["account_id"])

    @property
    def mode(self) -> str:
        return str(self.inbound["mode"])

    def reply(self, text: str) -> str:
        # Deferred: the messages package's lifecycle runs compliance's gate, so importing it at
        # module level would make the two packages import each other while initialising.
        from msgine.server.messages import accept_reply

        phone = self.inbound["from"]
        return accept_reply(
            self.conn,
            self.vault,
            account_id=self.account_id,
            mode="live" if self.mode == "live" else "test",
            to=phone,
            content=text,
            sender=self.inbound.get("to_number"),
            now=self.now,
            price_per_segment=self.pricing.price_per_segment,
            currency=self.pricing.currency,
        )

    def announce(self, *, opted_out: bool, keyword: Category) -> None:
        """The webhook event and the audit entry of a change to the suppression list."""
        events.contact_changed(
            self.conn,
            self.vault,
            account_id=self.account_id,
            mode=self.mode,
            opted_out=opted_out,
            phone=self.inbound["from"],
            phone_index=self.inbound["phone_index"],
            now=self.now,
            source="keyword",
            keyword=keyword,
        )
        record(
            self.conn,
            self.vault,
            KEYWORD_ACTOR,
            "contact.opted_out" if opted_out else "contact.opted_in",
            now=self.now,
            target=self.inbound["id"],
            account_id=self.account_id,
            details={"inboundId": self.inbound["id"], "source": "keyword"},
        )


def _opt_out(ctx: _Context) -> dict[str, Any]:
    added = _suppressions.suppress(
        ctx.conn,
        ctx.vault,
        account_id=ctx.account_id,
        mode=ctx.mode,
        phone=ctx.inbound["from"],
        phone_index=ctx.inbound["phone_index"],
        reason=_suppressions.OPT_OUT,
        source="keyword",
        now=ctx.now,
    )
    if not added:  # already opted out: one confirmation was enough
        return {"changed": False}
    reply_id = ctx.reply(opt_out_confirmation(ctx.policy, ctx.lists))
    ctx.announce(opted_out=True, keyword="opt_out")
    return {"changed": True, "replyMessageId": reply_id}


def _opt_in(ctx: _Context) -> dict[str, Any]:
    if not ctx.inbound.get("may_lift_opt_out", True):
        raise Forbidden(
            "Lifting an opt-out needs the 'compliance:manage' scope.",
            details={"requiredScope": "compliance:manage"},
        )
    if not _suppressions.lift(ctx.conn, ctx.account_id, ctx.mode, ctx.inbound["phone_index"]):
        return {"changed": False}
    reply_id = ctx.reply(opt_in_confirmation(ctx.policy))
    ctx.announce(opted_out=False, keyword="opt_in")
    return {"changed": True, "replyMessageId": reply_id}


def _help(ctx: _Context) -> dict[str, Any]:
    return {"replyMessageId": ctx.reply(help_answer(ctx.policy))}


_ACTIONS: dict[Category, Callable[[_Context], dict[str, Any]]] = {
    "opt_out": _opt_out,
    "opt_in": _opt_in,
    "help": _help,
}


def handle_inbound(
    conn: sa.Connection,
    vault: Vault,
    inbound: dict[str, Any],
    now: datetime,
    *,
    pricing: Pricing,
) -> dict[str, Any]:
    """Act on a keyword in one stored inbound message; {} when it holds none."""
    policy = policy_of(conn, inbound["account_id"])
    lists = keyword_lists(policy)
    category = classify(inbound["text"], lists)
    if category is None:
        return {}
    conn.execute(
        sa.update(inbound_messages)
        .where(inbound_messages.c.id == inbound["id"])
        .values(keyword=category)
    )
    ctx = _Context(conn, vault, inbound, now, policy, lists, pricing)
    return {"keyword": category, **_ACTIONS[category](ctx)}


def store_inbound(
    conn: sa.Connection,
    vault: Vault,
    account_id: str,
    phone: str,
    to: str | None,
    body: str,
    now: Any,
    mode: str = "test",
    *,
    carrier: str | None = None,
    carrier_message_id: str | None = None,
) -> dict[str, Any]:
    """Store one inbound SMS (number and text encrypted); the dict the inbound handlers take.
    ``mode``: ``test`` for the simulator's, ``live`` for a carrier's (replies are sent in it)."""
    inbound_id = new_id("in")
    row = {
        "id": inbound_id,
        "account_id": account_id,
        "mode": mode,
        "phone": vault.encrypt_str(
            phone, table="inbound_messages", column="phone", row_id=inbound_id
        ),
        "phone_index": vault.blind_index(account_id, phone),
        "to_number": to,
        "body": vault.encrypt_str(body, table="inbound_messages", column="body", row_id=inbound_id),
        "received_at": now,
        "carrier": carrier,
        "carrier_message_id": carrier_message_id,
    }
    conn.execute(sa.insert(inbound_messages).values(**row))
    return {**row, "mode": mode, "from": phone, "text": body}


def inbound_handler(pricing: Pricing) -> InboundHandler:
    """The handler to register on the app's inbound handlers."""

    def handler(
        conn: sa.Connection, vault: Vault, inbound: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        return handle_inbound(conn, vault, inbound, now, pricing=pricing)

    return handler
