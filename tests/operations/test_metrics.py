"""Pipeline metrics at /metrics after real traffic, and the Grafana dashboard that reads them."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from msgine._keyformat import generate_key
from msgine.server.keys import create_key, revoke_key
from support import free_port

DELIVERS = "+256701521269"
FAILS = "+256701521999"
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"


async def scrape(api: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample at /metrics, by name and labels."""
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


async def traffic(api: Any) -> None:
    """A delivered and a failed recipient, a webhook attempt that fails (nothing listens)."""
    created = await api.client.post(
        "/api/v1/webhooks",
        json={"url": f"https://127.0.0.1:{free_port()}/hook"},
        headers=api.headers(),
    )
    assert created.status_code == 201, created.text
    sent = await api.send(to=[DELIVERS, FAILS])
    assert sent.status_code == 201
    await api.drain()


async def test_pipeline_metrics_after_traffic(api: Any) -> None:
    before = await scrape(api)
    await traffic(api)
    after = await scrape(api)

    def grew(name: str, by: float = 1, **labels: str) -> None:
        delta = total(after, name, **labels) - total(before, name, **labels)
        assert delta >= by, (name, labels, delta)

    grew("msgine_messages_total", 2, status="queued", carrier="", mode="test")
    grew("msgine_messages_total", 2, status="sent", carrier="simulator", mode="test")
    grew("msgine_messages_total", 1, status="delivered", carrier="simulator", mode="test")
    grew("msgine_messages_total", 1, status="failed", carrier="simulator", mode="test")
    grew("msgine_carrier_submit_seconds_count", 2, carrier="simulator")
    grew("msgine_receipt_seconds_count", 1, carrier="simulator", status="delivered")
    grew("msgine_receipt_seconds_count", 1, carrier="simulator", status="failed")
    grew("msgine_webhook_attempts_total", 1, outcome="failure")
    grew("msgine_webhook_attempt_seconds_count", 1, outcome="failure")
    for queue in ("jobs", "webhooks"):
        assert ("msgine_queue_due", frozenset({("queue", queue)})) in after
        assert ("msgine_queue_oldest_due_seconds", frozenset({("queue", queue)})) in after
    text = (await api.client.get("/metrics")).text
    for secret in (DELIVERS, FAILS, DELIVERS[1:], api.key, api.account_id):
        assert secret not in text


async def test_queue_gauges_show_the_backlog_and_its_age(api: Any, clock: Any) -> None:
    assert (await api.send()).status_code == 201
    clock.advance(seconds=90)
    waiting = await scrape(api)
    assert value(waiting, "msgine_queue_due", queue="jobs") >= 1
    assert value(waiting, "msgine_queue_oldest_due_seconds", queue="jobs") >= 90
    await api.drain()
    drained = await scrape(api)
    assert value(drained, "msgine_queue_due", queue="jobs") == 0
    assert value(drained, "msgine_queue_oldest_due_seconds", queue="jobs") == 0


async def test_auth_failures_are_counted_by_reason(api: Any, clock: Any) -> None:
    runtime = api.runtime
    now = runtime.now()

    def new(**kwargs: Any) -> Any:
        return runtime.db.write(
            lambda conn: create_key(
                conn, runtime.vault, account_id=api.account_id, now=now, **kwargs
            )
        )

    revoked = new()
    runtime.db.write(
        lambda conn: revoke_key(conn, revoked.record["id"], now=now, vault=runtime.vault)
    )
    expired = new(expires_at=now + timedelta(minutes=1))
    elsewhere = new(allowed_ips=["10.0.0.0/8"])
    read_only = new(scopes=["messages:read"])
    clock.advance(minutes=2)
    presented = {
        "missing": None,
        "malformed": "msgine_test_notakey",
        "unknown": generate_key("test"),
        "revoked": revoked.secret,
        "expired": expired.secret,
        "ip_not_allowed": elsewhere.secret,
        "scope": read_only.secret,
    }
    before = await scrape(api)
    for reason, key in presented.items():
        headers = {} if key is None else {"X-Api-Key": key}
        response = await api.client.post("/api/v1/keys", json={}, headers=headers)
        assert response.status_code in (401, 403), reason
    after = await scrape(api)
    for reason in presented:
        delta = value(after, "msgine_auth_failures_total", reason=reason) - value(
            before, "msgine_auth_failures_total", reason=reason
        )
        assert delta == 1, reason


async def test_rate_limit_refusals_are_counted_by_limit(api: Any) -> None:
    limited = api.new_key(rate_limit="1/minute")
    before = await scrape(api)
    codes = [
        (await api.client.get("/api/v1/messages", headers=api.headers(limited))).status_code
        for _ in range(2)
    ]
    assert codes == [200, 429]
    after = await scrape(api)
    delta = value(after, "msgine_rate_limit_refusals_total", limit="key") - value(
        before, "msgine_rate_limit_refusals_total", limit="key"
    )
    assert delta == 1


# --- the dashboard ---------------------------------------------------------------------------

_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NOT_NAMES = re.compile(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"")
_IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_KEYWORDS |= {"and", "or", "unless", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, grouping labels, label matchers, durations or strings."""
    stripped = _NOT_NAMES.sub(" ", _GROUPING.sub(" ", expr))
    return {name for name in _IDENTIFIER.findall(stripped) if name.lower() not in _KEYWORDS}


def test_the_promql_parser_finds_names() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, carrier) (rate(a_seconds_bucket{x="y"}[5m])))'
        " / ignoring(z) b_total offset 5m"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total"}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


async def test_every_dashboard_query_names_metrics_that_exist(api: Any) -> None:
    await traffic(api)
    await api.client.get("/api/v1/messages", headers={"X-Api-Key": generate_key("test")})
    exposed = {name for name, _labels in await scrape(api)}
    expressions = dashboard_expressions()
    assert len(expressions) >= 12
    named: set[str] = set()
    for expr in expressions:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exposed, f"{expr!r} reads {sorted(names - exposed)}, not exposed"
        named |= names
    # Everything the pipeline measures is on the dashboard.
    for family in (
        "msgine_messages_total",
        "msgine_queue_due",
        "msgine_queue_oldest_due_seconds",
        "msgine_carrier_submit_seconds_bucket",
        "msgine_receipt_seconds_bucket",
        "msgine_webhook_attempt_seconds_bucket",
        "msgine_webhook_attempts_total",
        "msgine_rate_limit_refusals_total",
        "msgine_auth_failures_total",
    ):
        assert family in named, family


def test_remembered_metric_children_count_as_labels_would() -> None:
    """The worker looks each label set's child up once (``metrics.child``): it is the same
    child ``labels`` returns, so what it counts shows at /metrics under those labels."""
    from prometheus_client import REGISTRY

    from msgine.server import metrics

    labels = {"status": "delivered", "carrier": "remembered-child", "mode": "test"}
    child = metrics.child(metrics.MESSAGES, "delivered", "remembered-child", "test")
    assert child is metrics.child(metrics.MESSAGES, "delivered", "remembered-child", "test")
    assert child is metrics.MESSAGES.labels(**labels)
    before = REGISTRY.get_sample_value("msgine_messages_total", labels) or 0.0
    metrics.status_reached("delivered", carrier="remembered-child", mode="test", count=2)
    assert REGISTRY.get_sample_value("msgine_messages_total", labels) == before + 2
