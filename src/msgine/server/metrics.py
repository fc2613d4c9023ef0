"""Prometheus metrics of the pipeline, in one place: what each measures and its labels.

Labels hold only bounded, non-personal values: statuses, carrier names, modes, outcomes, limit
and reason names. Never a number, text, key, account or address (those identify people or
customers and would also grow without bound).

Counters count in the process that did the work: with ``serve --no-worker`` and a separate
``msgine worker``, the worker's counters are on its own ``--metrics-port``. The queue gauges are
read from the database when ``/metrics`` is scraped (:func:`refresh_queues`), with statements
that walk an index and stop at a bound, so a scrape costs the same with any backlog.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from prometheus_client import Counter, Gauge, Histogram

from msgine.server.storage import metadata

#: Statuses a recipient reaches, with the carrier that handled it ("" before a carrier is
#: chosen: accepted, refused at the gate) and the key's mode.
MESSAGES: Final = Counter(
    "msgine_messages",
    "Recipients reaching each status (a message to two numbers counts twice).",
    ["status", "carrier", "mode"],
)
# Submit latency is msgine_carrier_submit_seconds, with the other per-carrier metrics in
# msgine.server.carriers.
RECEIPT_SECONDS: Final = Histogram(
    "msgine_receipt_seconds",
    "Time from a carrier accepting a recipient (sent) to its final delivery receipt.",
    ["carrier", "status"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
WEBHOOK_SECONDS: Final = Histogram(
    "msgine_webhook_attempt_seconds",
    "Duration of one webhook delivery attempt (connect, send, answer).",
    ["outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOK_ATTEMPTS: Final = Counter(
    "msgine_webhook_attempts", "Webhook delivery attempts by outcome.", ["outcome"]
)
WEBHOOK_OUTCOMES: Final = ("success", "failure", "gone", "skipped")
RATE_LIMIT_REFUSALS: Final = Counter(
    "msgine_rate_limit_refusals",
    "Requests or recipients refused by a rate limit, by the limit that refused them.",
    ["limit"],
)
#: ``ip``, ``key``, ``account``: requests; ``recipient``, ``destination``: single recipients;
#: ``daily``: a send over the account's daily cap; ``lockout``: an address locked out.
RATE_LIMITS: Final = ("ip", "key", "account", "recipient", "daily", "destination", "lockout")
AUTH_FAILURES: Final = Counter(
    "msgine_auth_failures", "Refused authentications, by reason.", ["reason"]
)
#: Why an authentication was refused: no key; not a well-formed key (bad checksum); no such key;
#: revoked; expired; a valid key from outside its address allow-list; a valid key without the
#: route's scope. The caller gets the same 401 for the first five (see keys.principal_of).
AUTH_FAILURE_REASONS: Final = (
    "missing",
    "malformed",
    "unknown",
    "revoked",
    "expired",
    "ip_not_allowed",
    "scope",
)
QUEUE_DUE: Final = Gauge(
    "msgine_queue_due",
    "Work due now and not finished (read at scrape time; capped at msgine_queue_due_cap).",
    ["queue"],
)
QUEUE_DUE_CAP: Final = 10_000
QUEUE_CAP: Final = Gauge("msgine_queue_due_cap", "The most msgine_queue_due counts up to.")
QUEUE_OLDEST: Final = Gauge(
    "msgine_queue_oldest_due_seconds",
    "How long the oldest due item of a queue has been due (0 when none is).",
    ["queue"],
)
#: queue name -> (table, due column). ``jobs``: carrier submits and receipts; ``webhooks``:
#: webhook deliveries waiting for their next attempt.
_JOBS = metadata.tables["jobs"]
_DELIVERIES = metadata.tables["webhook_deliveries"]
QUEUES: Final = {
    "jobs": (_JOBS, _JOBS.c.due_at),
    "webhooks": (_DELIVERIES, _DELIVERIES.c.next_attempt_at),
}


def _zeros() -> None:
    """Every label value known in advance exists from the start, so dashboards and alerts see
    0 instead of no data."""
    for outcome in WEBHOOK_OUTCOMES:
        WEBHOOK_ATTEMPTS.labels(outcome=outcome)
    for limit in RATE_LIMITS:
        RATE_LIMIT_REFUSALS.labels(limit=limit)
    for reason in AUTH_FAILURE_REASONS:
        AUTH_FAILURES.labels(reason=reason)
    QUEUE_CAP.set(QUEUE_DUE_CAP)
    for queue in QUEUES:
        QUEUE_DUE.labels(queue=queue)
        QUEUE_OLDEST.labels(queue=queue)


_zeros()


_Metric = TypeVar("_Metric", Counter, Gauge, Histogram)
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: _Metric, *values: str) -> _Metric:
    """``metric.labels(*values)``, remembered: the worker counts every status change, and
    ``labels`` costs more than the increment. Label values here are few (statuses, carriers,
    modes), so the memory is bounded by configuration."""
    key = (id(metric), values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values)
    return found


def status_reached(status: str, *, carrier: str, mode: str, count: int = 1) -> None:
    child(MESSAGES, status, carrier, mode).inc(count)


def queue_snapshot(conn: sa.Connection, now: datetime) -> dict[str, tuple[int, float]]:
    """Per queue: items due now (at most QUEUE_DUE_CAP) and the oldest one's age in seconds.

    Each is a walk of the due column's index: a bounded count, and a MIN the database answers
    from the index's first entry.
    """
    snapshot: dict[str, tuple[int, float]] = {}
    for name, (table, due) in QUEUES.items():
        due_now = sa.select(table.c.id).where(due <= now).limit(QUEUE_DUE_CAP).subquery()
        count = conn.execute(sa.select(sa.func.count()).select_from(due_now)).scalar_one()
        oldest = conn.execute(sa.select(sa.func.min(due))).scalar()
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        snapshot[name] = (int(count), age)
    return snapshot


def refresh_queues(snapshot: dict[str, tuple[int, float]]) -> None:
    for name, (count, age) in snapshot.items():
        QUEUE_DUE.labels(queue=name).set(count)
        QUEUE_OLDEST.labels(queue=name).set(age)
