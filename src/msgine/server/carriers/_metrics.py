"""Prometheus metrics per carrier (``msgine_carrier_*``). Labels are carrier names, outcomes
and carriers' status words (a bounded set): never a number, a text or a credential."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

from msgine.server.carriers._base import CarrierHealth
from msgine.server.metrics import child

SUBMITS = Counter(
    "msgine_carrier_submits",
    "Carrier submits by outcome (accepted, retry, failover, failed, error) and the carrier's "
    "own status word (an SMPP command status, an HTTP status).",
    ["carrier", "outcome", "detail"],
)
SUBMIT_SECONDS = Histogram(
    "msgine_carrier_submit_seconds",
    "Time from handing a submit to the carrier to its answer.",
    ["carrier"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECEIPTS = Counter(
    "msgine_carrier_receipts",
    "Delivery receipts by the state they set (delivered, failed, sent, unknown) and whether "
    "they matched a recipient at once (matched), waited for the submit's record (early) or "
    "settled an unknown outcome (settled).",
    ["carrier", "state", "match"],
)
RECEIPT_SECONDS = Histogram(
    "msgine_carrier_receipt_seconds",
    "Time from a recipient's submit to its final delivery receipt.",
    ["carrier"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86400),
)
INBOUND = Counter("msgine_carrier_inbound", "Inbound messages stored, by carrier.", ["carrier"])
BINDS_UP = Gauge("msgine_carrier_binds_up", "Connections (binds) up, in this process.", ["carrier"])
BINDS_WANTED = Gauge(
    "msgine_carrier_binds_wanted", "Connections (binds) configured, in this process.", ["carrier"]
)
WINDOW = Gauge(
    "msgine_carrier_window_in_use",
    "Submits in flight awaiting an answer, in this process.",
    ["carrier"],
)
UP = Gauge(
    "msgine_carrier_up",
    "1 while the carrier is up, 0.5 degraded, 0 down (this process).",
    ["carrier"],
)
_STATE_VALUE = {"up": 1.0, "degraded": 0.5, "down": 0.0}


def observe_health(healths: Sequence[tuple[str, CarrierHealth]]) -> None:
    for name, health in healths:
        BINDS_UP.labels(name).set(health.binds_up)
        BINDS_WANTED.labels(name).set(health.binds_wanted)
        WINDOW.labels(name).set(health.window_in_use)
        UP.labels(name).set(_STATE_VALUE.get(health.state, 0.0))


def observe_submit(carrier: str, outcome: str, detail: str | None, seconds: float) -> None:
    child(SUBMITS, carrier, outcome, (detail or "")[:40]).inc()
    child(SUBMIT_SECONDS, carrier).observe(seconds)
