"""API8:2023 Security misconfiguration: what the API accepts, stores and logs by default.

- Every integer parameter (query or body) is bounded in the schema and refused outside it with a
  400, never a database error.
- Numbers are numbers: ``true`` is not ``1``, and ``"1"`` is not a boolean, in any request body.
- Free-form JSON a caller stores is bounded in depth and size when it is submitted, so a stored
  value can always be read, exported and deleted again.
- Logs and metrics name routes by template, never by a raw path that can hold a phone number.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Any, get_args

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError

from msgine.server.accounts import AccountPolicy
from msgine.server.api import create_app
from msgine.server.api.routes.messages import SendBody
from support import Gateway

PHONE = "+256701521269"

# --- integers are bounded ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "before=99999999999999999999999",
        "before=9223372036854775808",
        "before=-1",
        "limit=99999999999999999999999",
    ],
)
async def test_huge_integers_in_the_audit_query_are_a_400(api: Any, query: str) -> None:
    response = await api.client.get(f"/api/v1/audit?{query}", headers=api.headers())
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"


async def test_the_largest_sequence_is_still_a_valid_query(api: Any) -> None:
    response = await api.client.get(
        "/api/v1/audit?before=9223372036854775807", headers=api.headers()
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/messages?page=99999999999999999999",
        "/api/v1/developers/sms/history?limit=99999999999999999999",
        "/api/v1/suppressions?page=100001",
    ],
)
async def test_huge_page_numbers_are_a_400(api: Any, path: str) -> None:
    response = await api.client.get(path, headers=api.headers())
    assert response.status_code == 400, response.text


def _app_schema(runtime: Any) -> dict[str, Any]:
    schema: dict[str, Any] = create_app(runtime).openapi()
    return schema


def _numeric(schema: dict[str, Any]) -> bool:
    options = [schema, *schema.get("anyOf", [])]
    return any(option.get("type") in {"integer", "number"} for option in options)


def _bounded(schema: dict[str, Any]) -> bool:
    options = [schema, *schema.get("anyOf", [])]
    numeric = [o for o in options if o.get("type") in {"integer", "number"}]
    return all(
        ("maximum" in o or "exclusiveMaximum" in o) and ("minimum" in o or "exclusiveMinimum" in o)
        for o in numeric
    )


def test_every_integer_query_parameter_has_bounds_in_the_schema(runtime: Any) -> None:
    unbounded = []
    for path, operations in _app_schema(runtime)["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if _numeric(schema) and not _bounded(schema):
                    unbounded.append(f"{method.upper()} {path} ?{parameter['name']}")
    assert unbounded == []


def _body_models(runtime: Any) -> list[type[BaseModel]]:
    """Every request body model of the app, plus the bodies routes parse themselves."""
    models: list[type[BaseModel]] = [SendBody, AccountPolicy]
    for route in _api_routes(create_app(runtime).routes):
        if route.body_field is not None:
            annotation = route.body_field.field_info.annotation
            for candidate in (annotation, *get_args(annotation)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    models.append(candidate)
    return list(dict.fromkeys(models))


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """The app's API routes, also inside included routers (which FastAPI may keep as one)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        inner = getattr(route, "original_router", None) or getattr(route, "router", None)
        if inner is not None and inner is not route:
            found.extend(_api_routes(list(getattr(inner, "routes", []))))
    return found


def _fields(model: type[BaseModel]) -> list[tuple[str, TypeAdapter[Any], dict[str, Any]]]:
    found = []
    for name, info in model.model_fields.items():
        annotated = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        adapter: TypeAdapter[Any] = TypeAdapter(annotated)
        found.append((f"{model.__name__}.{info.alias or name}", adapter, adapter.json_schema()))
    return found


def _refuses(adapter: TypeAdapter[Any], value: Any) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return True
    return False


def test_every_numeric_body_field_is_bounded_and_refuses_booleans(runtime: Any) -> None:
    models = _body_models(runtime)
    assert len(models) >= 8  # the walk found the app's body models
    problems = []
    for model in models:
        for name, adapter, schema in _fields(model):
            if not _numeric(schema):
                continue
            if not _bounded(schema):
                problems.append(f"{name}: no bounds")
            for value in (True, False, "1"):
                if not _refuses(adapter, value):
                    problems.append(f"{name} accepts {value!r}")
    assert problems == []


def test_every_boolean_body_field_refuses_numbers_and_strings(runtime: Any) -> None:
    problems = []
    for model in _body_models(runtime):
        for name, adapter, schema in _fields(model):
            options = [schema, *schema.get("anyOf", [])]
            if any(option.get("type") == "boolean" for option in options):
                for value in (0, 1, "true", "yes"):
                    if not _refuses(adapter, value):
                        problems.append(f"{name} accepts {value!r}")
    assert problems == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/account/webhook-secret", {"graceHours": False}),
        ("POST", "/api/v1/keys", {"expiresInDays": True}),
        ("PATCH", "/api/v1/account/policy", {"dailyCap": True}),
        ("PATCH", "/api/v1/account/policy", {"retentionDays": True}),
        ("PATCH", "/api/v1/account/policy", {"marketingRequiresConsent": 0}),
        ("PATCH", "/api/v1/account/policy", {"marketingRequiresConsent": "no"}),
        ("PATCH", "/api/v1/account/policy", {"dailyCap": 10**30}),
    ],
)
async def test_booleans_are_not_numbers_through_the_api(
    api: Any, method: str, path: str, body: dict[str, Any]
) -> None:
    response = await api.client.request(method, path, json=body, headers=api.headers())
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    policy = await api.client.get("/api/v1/account/policy", headers=api.headers())
    assert policy.json()["dailyCap"] is None
    assert policy.json()["marketingRequiresConsent"] is True


async def test_key_rotation_refuses_a_boolean_grace(api: Any) -> None:
    listed = await api.client.get("/api/v1/keys", headers=api.headers())
    key_id = listed.json()["keys"][0]["id"]
    response = await api.client.post(
        f"/api/v1/keys/{key_id}/rotate", json={"graceHours": False}, headers=api.headers()
    )
    assert response.status_code == 400, response.text


# --- stored JSON is bounded when it is submitted ----------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"ticked": True}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def test_deep_consent_evidence_is_refused_and_nothing_is_stored(api: Any) -> None:
    response = await api.client.put(
        f"/api/v1/consents/{PHONE}",
        json={"purpose": "marketing", "source": "web form", "evidence": _nested(400)},
        headers=api.headers(),
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"] == {"field": "evidence", "maxDepth": 10}
    read = await api.client.get(f"/api/v1/consents/{PHONE}", headers=api.headers())
    assert read.status_code == 200, read.text
    assert read.json()["consents"] == []
    export = await api.client.get(
        "/api/v1/privacy/export", params={"phone": PHONE}, headers=api.headers()
    )
    assert export.status_code == 200
    assert export.json()["consents"] == []


async def test_evidence_at_the_limit_is_stored_and_reads_back(api: Any) -> None:
    evidence = _nested(10)
    response = await api.client.put(
        f"/api/v1/consents/{PHONE}",
        json={"purpose": "marketing", "source": "web form", "evidence": evidence},
        headers=api.headers(),
    )
    assert response.status_code == 200, response.text
    export = await api.client.get(
        "/api/v1/privacy/export", params={"phone": PHONE}, headers=api.headers()
    )
    assert export.json()["consents"][0]["evidence"] == evidence


async def test_wide_evidence_is_bounded_by_size(api: Any) -> None:
    evidence = {f"k{n}": [n] * 10 for n in range(200)}
    response = await api.client.put(
        f"/api/v1/consents/{PHONE}",
        json={"purpose": "marketing", "source": "web form", "evidence": evidence},
        headers=api.headers(),
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "evidence"


@pytest.mark.parametrize(
    "change",
    [
        {"keywords": {"optOut": ["STOP"] * 51}},
        {"keywords": {"optOut": ["S" * 41]}},
        {"allowedCountries": ["UG"] * 251},
    ],
)
async def test_policy_lists_are_bounded(api: Any, change: dict[str, Any]) -> None:
    response = await api.client.patch("/api/v1/account/policy", json=change, headers=api.headers())
    assert response.status_code == 400, response.text


# --- logs and metrics name route templates --------------------------------------------------------

PATH_SPELLINGS = [
    "00256701555992",
    "0025 6701 555 992",
    "(0256) 701-555992",
    "[0256]701555992",
    "+256701555992",
]


def _wait_for_line(log: Path, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text()
        if text in content:
            return content
        time.sleep(0.1)
    return log.read_text()


@pytest.mark.slow
def test_the_real_servers_access_log_holds_templates_not_numbers(gateway: Gateway) -> None:
    headers = {"X-Api-Key": gateway.api_key}
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=10) as client:
        for spelling in PATH_SPELLINGS:
            client.put(f"/consents/{spelling}", json={"purpose": "marketing", "source": "form"})
            client.get(f"/consents/{spelling}")
        client.get("/no/such/route/00256701555992")
    log = Path(gateway.root) / f"gateway-{gateway.port}.log"
    content = _wait_for_line(log, '"route": "unmatched"')
    assert "701555992" not in content
    assert "555 992" not in content and "555992" not in content
    assert '"route": "/consents/{phone}"' in content
    assert '"logger": "msgine.access"' in content
    assert "uvicorn.access" not in content


async def test_metrics_have_bounded_labels_and_no_paths(api: Any) -> None:
    await api.client.get("/api/v1/consents/00256701555992", headers=api.headers())
    await api.client.request("PROPFIND", "/api/v1/messages", headers=api.headers())
    await api.client.request("XYZZY00256701555992", "/api/v1/messages", headers=api.headers())
    await api.client.get("/api/v1/0025 6701 555 992/x", headers=api.headers())
    metrics = (await api.client.get("/metrics")).text
    # In the labels: the values are numbers, and a timestamp may hold any run of digits.
    labels = " ".join(re.findall(r"\{[^}]*\}", metrics))
    assert 'route="unmatched"' in labels
    assert "701555992" not in labels and "6701" not in labels
    assert "PROPFIND" not in metrics and "XYZZY" not in metrics
    assert 'method="OTHER"' in metrics
    assert 'route="unmatched"' in metrics


# --- stored labels cannot carry terminal escapes or forged lines ------------------------------


@pytest.mark.parametrize(
    "label", ["ops\nkey_1  live  all scopes", "\x1b[2J\x1b[31mURGENT", "billing\u202etxt.exe"]
)
async def test_labels_shown_to_people_refuse_control_characters(api: Any, label: str) -> None:
    cases = [
        ("POST", "/api/v1/keys", {"name": label}),
        ("POST", "/api/v1/webhooks", {"url": "https://8.8.8.8/x", "description": label}),
        ("PUT", f"/api/v1/consents/{PHONE}", {"purpose": "marketing", "source": label}),
    ]
    for method, path, body in cases:
        response = await api.client.request(method, path, json=body, headers=api.headers())
        assert response.status_code == 400, (path, response.text)
        assert label not in response.text
    listed = await api.client.get("/api/v1/keys", headers=api.headers())
    assert all(key["name"] != label for key in listed.json()["keys"])
