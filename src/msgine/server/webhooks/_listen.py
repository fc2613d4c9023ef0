"""Local development of webhook receivers: follow an account's test-mode events and forward each
to a local URL, signed exactly as a real delivery is (``msgine webhooks listen``), and raise a
test event on demand (``msgine webhooks trigger``).

The mechanism: the command reads the gateway's database, like every other command, and follows
the ``events`` table. Every event the gateway raises is a row there, written in the transaction
of the change that caused it, so the listener sees what endpoints would receive without any
endpoint, public URL, TLS certificate or open port on the gateway. It reads only new rows
(from the account's index on ``created_at``), re-reading a short overlap window because group
commits may make a row visible a little after a later one; ids already forwarded are skipped.

A running session registers itself (``webhook_listeners``, with an expiry it renews while it
polls): events are stored only when something will receive them (:mod:`msgine.server.events`),
and the registration is what makes the account's test-mode events stored for the session even
without an endpoint. Events raised after the session printed "Ready" are forwarded; a session
killed without closing stops counting within ``LISTENER_TTL``.

Only test mode crosses: the query reads the account's test-mode events only (every event has
the mode of what raised it; its body says ``"livemode": false``). Forwarding is allowed to plain
``http://localhost`` and loopback addresses only, never to another host, since nothing here
applies the SSRF policy real deliveries pass through.

The signing secret is derived from the master key, the account and the machine's name, so it
stays the same across sessions on one machine (the receiver's configuration need not change)
and no one without the master key can compute it.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
import sqlalchemy as sa

from msgine.server import events as event_store
from msgine.server._ids import new_id
from msgine.server.crypto import Vault
from msgine.server.errors import InvalidRequest
from msgine.server.storage import Database, events, webhook_listeners
from msgine.webhooks import SECRET_PREFIX, signature_headers

LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: How far back each poll looks again for rows committed after a later one became visible.
OVERLAP: Final = timedelta(seconds=5)
BATCH: Final = 100
#: How long a listen session's registration lasts unless renewed; renewed each third of it.
LISTENER_TTL: Final = timedelta(seconds=60)
#: A fictional number (NANP 555-01XX) for triggered events: no real person's number.
FICTIONAL_NUMBER: Final = "+15555550123"


def check_forward_url(url: str) -> str:
    """``url`` if it is http(s) to this machine; else a refusal saying what is allowed."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise InvalidRequest(f"--forward-to is not a URL: {url!r}") from None
    host = parsed.host.lower()
    if parsed.scheme not in ("http", "https") or host not in LOOPBACK_HOSTS or parsed.userinfo:
        raise InvalidRequest(
            "--forward-to must be an http:// or https:// URL on this machine "
            "(localhost, 127.0.0.1 or [::1]), e.g. http://localhost:9000/webhooks/msgine; "
            "to reach other hosts, create a webhook endpoint (POST /api/v1/webhooks)."
        )
    return str(parsed)


def listen_secret(vault: Vault, account_id: str, machine: str | None = None) -> str:
    """The ``whsec_`` secret of listen sessions for ``account_id`` on this machine: stable, and
    computable only with the master key (a keyed HMAC, namespaced for this use)."""
    token = vault.blind_index(account_id, "webhooks-listen\x00" + (machine or machine_name()))
    key = hashlib.sha256(f"msgine-listen:{token}".encode()).digest()
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def machine_name() -> str:
    try:
        with open("/etc/machine-id", encoding="ascii") as handle:
            return handle.read().strip() or socket.gethostname()
    except OSError:
        return socket.gethostname()


@dataclass(frozen=True)
class TestEvent:
    """One test-mode event to forward: its stored body bytes, exactly as endpoints get them."""

    id: str
    type: str
    created_at: datetime
    body: bytes = field(repr=False)


_FOLLOW = (
    sa.select(events.c.id, events.c.type, events.c.body, events.c.created_at)
    .where(
        events.c.account_id == sa.bindparam("account_id"),
        events.c.mode == "test",
        events.c.purged_at.is_(None),
        events.c.created_at >= sa.bindparam("since"),
    )
    .order_by(events.c.created_at, events.c.id)
    .limit(BATCH)
)


class EventFollower:
    """New test-mode events of one account, each returned once, oldest first."""

    def __init__(self, vault: Vault, account_id: str, since: datetime) -> None:
        self.vault = vault
        self.account_id = account_id
        self.since = since
        self._seen: dict[str, datetime] = {}

    def poll(self, conn: sa.Connection) -> list[TestEvent]:
        found: list[TestEvent] = []
        start = self.since - OVERLAP
        while True:
            rows = conn.execute(_FOLLOW, {"account_id": self.account_id, "since": start}).all()
            fresh = [row for row in rows if row.id not in self._seen]
            for row in fresh:
                self._seen[row.id] = row.created_at
                event = self._test_event(conn, row)
                if event is not None:
                    found.append(event)
            if len(rows) < BATCH or not fresh:
                break
            start = rows[-1].created_at
        if found:
            self.since = max(self.since, max(event.created_at for event in found))
        self._forget_before(self.since - 2 * OVERLAP)
        return found

    def _test_event(self, conn: sa.Connection, row: Any) -> TestEvent | None:
        if row.body is None:  # erased or purged meanwhile
            return None
        body = self.vault.decrypt(row.body, table="events", column="body", row_id=row.id)
        return TestEvent(id=row.id, type=row.type, created_at=row.created_at, body=body)

    def _forget_before(self, moment: datetime) -> None:
        self._seen = {eid: at for eid, at in self._seen.items() if at >= moment}


class ListenSession:
    """A registered listener and its follower: while it is open, the account's test-mode events
    are stored and :meth:`poll` returns each new one once. Close it (or use ``with``) to stop."""

    def __init__(
        self, db: Database, vault: Vault, account_id: str, clock: Callable[[], datetime]
    ) -> None:
        self.db = db
        self.account_id = account_id
        self.clock = clock
        self.id = new_id("wls")
        now = clock()
        self._register(now)
        self.follower = EventFollower(vault, account_id, now)

    def _register(self, now: datetime) -> None:
        self._renewed = now
        self.db.write(lambda conn: register_listener(conn, self.id, self.account_id, now))

    def poll(self) -> list[TestEvent]:
        now = self.clock()
        if now - self._renewed >= LISTENER_TTL / 3:
            self._register(now)
        return self.db.read(self.follower.poll)

    def close(self) -> None:
        self.db.write(lambda conn: unregister_listener(conn, self.id))

    def __enter__(self) -> ListenSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def register_listener(
    conn: sa.Connection, listener_id: str, account_id: str, now: datetime
) -> None:
    """(Re)register a listen session until ``now + LISTENER_TTL``; drops expired sessions."""
    conn.execute(
        sa.delete(webhook_listeners).where(
            sa.or_(webhook_listeners.c.id == listener_id, webhook_listeners.c.expires_at <= now)
        )
    )
    conn.execute(
        sa.insert(webhook_listeners).values(
            id=listener_id, account_id=account_id, expires_at=now + LISTENER_TTL
        )
    )
    event_store.audience_changed(conn)


def unregister_listener(conn: sa.Connection, listener_id: str) -> None:
    conn.execute(sa.delete(webhook_listeners).where(webhook_listeners.c.id == listener_id))
    event_store.audience_changed(conn)


@dataclass(frozen=True)
class Forwarded:
    """What the local receiver answered (``status`` None: no answer, see ``error``)."""

    event: TestEvent
    status: int | None
    latency_ms: int
    error: str | None = None


def forward(client: httpx.Client, url: str, secret: str, event: TestEvent) -> Forwarded:
    """POST the event's bytes with the headers a real delivery carries, signed now."""
    headers = signature_headers([secret], event.id, int(time.time()), event.body)
    headers["content-type"] = "application/json"
    headers["user-agent"] = "msgine-webhooks-listen"
    started = time.perf_counter()
    try:
        response = client.post(url, content=event.body, headers=headers)
    except httpx.HTTPError as exc:
        return Forwarded(event, None, _ms(started), type(exc).__name__)
    return Forwarded(event, response.status_code, _ms(started))


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def trigger(
    conn: sa.Connection, vault: Vault, account_id: str, event_type: str, now: datetime
) -> str | None:
    """Raise a test-mode ``event_type`` with made-up content (a fictional number, ids of no
    real message) for listen sessions; no endpoint or callback URL gets it. None (nothing
    stored) when no listen session of the account is running."""
    if event_type not in event_store.EVENT_TYPES:
        raise InvalidRequest(
            f"Unknown event {event_type!r}; one of: {', '.join(event_store.EVENT_TYPES)}."
        )
    fields, data = sample_event(event_type)
    return event_store.emit(
        conn,
        vault,
        account_id=account_id,
        mode="test",
        event_type=event_type,
        now=now,
        fields=fields,
        data={**data, "trigger": True},
        deliver=False,
    )


def sample_event(event_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
    message_id = new_id("msg")
    kind, _, action = event_type.partition(".")
    if kind == "message" and action != "received":
        fields = {
            "status": action,
            "messageId": message_id,
            "to": FICTIONAL_NUMBER,
            "from": "MsGine",
            "sid": message_id,
        }
        data: dict[str, Any] = {"recipientId": new_id("rcp"), "segments": 1}
        data["messageStatus"] = action
        if action == "failed":
            data["errorCode"] = "undeliverable"
        return fields, data
    if event_type == "message.received":
        fields = {"status": "received", "messageId": message_id, "from": FICTIONAL_NUMBER}
        return fields, {"message": "Hello from a test event"}
    if kind == "contact":
        status = "opted_out" if action == "opted_out" else "opted_in"
        return {"status": status, "to": None, "from": FICTIONAL_NUMBER}, {"source": "trigger"}
    data = {"keyId": new_id("key"), "mode": "test", "reason": "trigger", "replacedBy": None}
    return {"status": "revoked"}, data


def follow(
    poll: Callable[[], list[TestEvent]], interval: float, stop_after: int | None = None
) -> Iterator[TestEvent]:
    """Yield events from ``poll()`` every ``interval`` seconds, forever or ``stop_after``."""
    count = 0
    while stop_after is None or count < stop_after:
        batch = poll()
        for event in batch:
            yield event
            count += 1
            if stop_after is not None and count >= stop_after:
                return
        if not batch:
            time.sleep(interval)
