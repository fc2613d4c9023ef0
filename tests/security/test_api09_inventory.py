"""API9:2023 Improper inventory management: what the gateway publishes about itself is true.

* The audit chain's head is published (security log and anchor file) so that cutting the log's
  tail is caught by ``msgine audit verify --anchor``.
* The OpenAPI document is the inventory: every route the server answers is in it, with the
  status codes it really answers and typed bodies, the key styles it accepts as security
  schemes, and the package's real version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from security_helpers import json_lines, run_cli, settings_env

from msgine.server.audit import Actor, HeadPublisher, read_head, record
from msgine.server.storage._tables import audit_log
from support import Gateway, gateway_env, make_settings, start_gateway

# --- the audit chain's head ---------------------------------------------------------------


def _append(runtime: Any, count: int) -> None:
    for n in range(count):
        runtime.db.write(
            lambda conn, n=n: record(
                conn,
                runtime.vault,
                Actor("cli:test"),
                "test.action",
                now=runtime.now(),
                target=str(n),
            )
        )


def _cut_tail(runtime: Any, keep: int) -> None:
    runtime.db.write(lambda conn: conn.execute(sa.delete(audit_log).where(audit_log.c.seq > keep)))


async def test_a_cut_tail_fails_verification_against_the_published_head(
    runtime: Any, tmp_path: Path
) -> None:
    anchor = tmp_path / "anchor" / "audit-head.json"
    security_log = tmp_path / "security.log"
    runtime.settings.audit_anchor_file = anchor
    _append(runtime, 5)
    published = await HeadPublisher(runtime).publish()
    assert published is not None and published.seq == 5
    assert json.loads(anchor.read_text())["seq"] == 5
    env = settings_env(runtime.settings, MSGINE_SECURITY_LOG_PATH=str(security_log))

    intact = run_cli(env, "audit", "verify", "--anchor", str(anchor))
    assert intact.returncode == 0, intact.stderr
    assert "up to the published head at seq 5" in intact.stdout

    _cut_tail(runtime, keep=3)
    plain = run_cli(env, "audit", "verify")
    assert plain.returncode == 0  # the shorter chain is internally consistent
    for args in (
        ("--anchor", str(anchor)),
        ("--anchor-seq", "5", "--anchor-hash", published.hash),
    ):
        cut = run_cli(env, "audit", "verify", *args)
        assert cut.returncode == 1, cut.stdout
        assert cut.stderr.strip() == "error: audit log broken at seq 4, id (missing): truncated"
    [alert, *_] = [e for e in json_lines(security_log) if e["event"] == "audit_chain_broken"]
    assert alert["reason"] == "truncated"


def test_a_rewritten_entry_at_the_anchor_fails_verification(runtime: Any, tmp_path: Path) -> None:
    _append(runtime, 3)
    head = runtime.db.read(read_head)
    env = settings_env(runtime.settings)
    other = "f" * 64
    wrong = run_cli(env, "audit", "verify", "--anchor-seq", str(head.seq), "--anchor-hash", other)
    assert wrong.returncode == 1
    assert "hash_mismatch" in wrong.stderr
    right = run_cli(
        env, "audit", "verify", "--anchor-seq", str(head.seq), "--anchor-hash", head.hash
    )
    assert right.returncode == 0, right.stderr


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--anchor-seq", "3"), "--anchor-seq and --anchor-hash go together"),
        (("--anchor-seq", "3", "--anchor-hash", "abc"), "64 lower-case hex characters"),
        (("--anchor", "missing.json"), "cannot read"),
    ],
)
def test_anchor_options_are_checked(tmp_path: Path, args: tuple[str, ...], problem: str) -> None:
    bad = run_cli(settings_env(make_settings(tmp_path)), "audit", "verify", *args, cwd=tmp_path)
    assert bad.returncode == 2
    assert problem in bad.stderr


@pytest.mark.slow
def test_serve_publishes_the_head_to_the_security_log_and_the_anchor_file(
    tmp_path: Path,
) -> None:
    anchor = tmp_path / "audit-head.json"
    security_log = tmp_path / "security.log"
    env = gateway_env(
        tmp_path,
        MSGINE_AUDIT_ANCHOR_FILE=str(anchor),
        MSGINE_AUDIT_ANCHOR_INTERVAL="0.1",
        MSGINE_SECURITY_LOG_PATH=str(security_log),
    )
    gw = start_gateway(env, cwd=tmp_path)
    try:
        headers = {"X-Api-Key": gw.api_key}
        for n in range(3):
            made = httpx.post(f"{gw.base_url}/keys", json={"name": f"k{n}"}, headers=headers)
            assert made.status_code == 201, made.text
        newest = _newest_entry(gw)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if anchor.exists() and json.loads(anchor.read_text())["seq"] == newest["seq"]:
                break
            time.sleep(0.1)
        published = json.loads(anchor.read_text())
        assert (published["seq"], published["hash"]) == (newest["seq"], newest["hash"])
        heads = [e for e in json_lines(security_log) if e["event"] == "audit_head"]
        assert (heads[-1]["seq"], heads[-1]["hash"]) == (newest["seq"], newest["hash"])
    finally:
        gw.stop()
    assert gw.cli("audit", "verify", "--anchor", str(security_log)).returncode == 0
    _delete_newest(gw, 2)
    assert gw.cli("audit", "verify").returncode == 0
    for source in (anchor, security_log):
        cut = gw.cli("audit", "verify", "--anchor", str(source), check=False)
        assert cut.returncode == 1
        assert "truncated" in cut.stderr


def _newest_entry(gw: Gateway) -> dict[str, Any]:
    listed = gw.cli("audit", "list", "--limit", "1", "--json")
    [entry] = json.loads(listed.stdout)
    return dict(entry)


def _delete_newest(gw: Gateway, count: int) -> None:
    engine = sa.create_engine(f"sqlite:///{Path(gw.env['MSGINE_DATA_DIR']) / 'msgine.db'}")
    with engine.begin() as conn:
        newest = conn.execute(sa.select(sa.func.max(audit_log.c.seq))).scalar_one()
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq > newest - count))
    engine.dispose()


# --- the OpenAPI document ------------------------------------------------------------------

#: What any authenticated operation may answer besides its success.
AUTHENTICATED = {"400", "401", "403", "429", "503"}


async def _document(api: Any) -> dict[str, Any]:
    got = await api.client.get("/openapi.json")
    assert got.status_code == 200
    document: dict[str, Any] = got.json()
    return document


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def _served(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) the application answers, from its routing table."""
    from fastapi.routing import iter_route_contexts

    served = set()
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if path.startswith(("/docs", "/redoc", "/openapi")):
            continue
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                served.add((method, path))
    return served


async def test_every_route_is_documented_and_nothing_else(api: Any) -> None:
    document = await _document(api)
    assert set(_operations(document)) == _served(api.app)


async def test_every_answer_is_typed(api: Any) -> None:
    """No bare objects: each JSON answer references a model, each error the error body."""
    document = await _document(api)
    schemas = document["components"]["schemas"]
    for (method, path), operation in _operations(document).items():
        for status, response in operation["responses"].items():
            content = response.get("content", {})
            if status == "204":
                assert not content
                continue
            if path == "/metrics":
                assert list(content) == ["text/plain; version=0.0.4; charset=utf-8"]
                continue
            schema = content["application/json"]["schema"]
            assert "$ref" in schema, (method, path, status, schema)
            name = schema["$ref"].rsplit("/", 1)[-1]
            assert schemas[name].get("properties"), (method, path, status, name)
            if status.startswith(("4", "5")) and path != "/readyz":
                assert name == "ErrorBody", (method, path, status)
        assert "422" not in operation["responses"]  # validation errors are answered 400


async def test_authenticated_operations_name_the_three_key_styles_and_their_errors(
    api: Any,
) -> None:
    document = await _document(api)
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": schemes["ApiKeyHeader"]["description"],
    }
    assert schemes["BearerKey"]["type"] == "http"
    assert schemes["BearerKey"]["scheme"] == "bearer"
    assert (schemes["AuthorizationKey"]["in"], schemes["AuthorizationKey"]["name"]) == (
        "header",
        "Authorization",
    )
    public = {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/meta/ips"),
        # Carriers' callbacks: the path's token and the provider's signature authenticate them.
        ("POST", "/api/v1/carriers/{carrier}/callbacks/{token}/{what}"),
    }
    for key, operation in _operations(document).items():
        if key in public:
            assert "security" not in operation
            continue
        assert operation["security"] == [
            {"ApiKeyHeader": []},
            {"BearerKey": []},
            {"AuthorizationKey": []},
        ]
        assert set(operation["responses"]) >= AUTHENTICATED, key
        if "{" in key[1]:
            # An id or number in the path may name nothing in the caller's account.
            assert "404" in operation["responses"] or "phone" in key[1], key


async def test_documented_statuses_are_the_ones_the_server_answers(api: Any) -> None:
    """Each status named in a route's handler or its service is in the document: a missing
    object is 404 where the route takes an id, a refused key is 401/403 everywhere."""
    document = await _document(api)
    ops = _operations(document)
    other_key = api.new_key(scopes=["messages:read"])
    probes = [
        ("GET", "/api/v1/keys", None, "403"),
        ("POST", "/api/v1/keys/key_missing/revoke", api.key, "404"),
        ("POST", "/api/v1/keys/key_missing/rotate", api.key, "404"),
        ("POST", "/api/v1/keys/key_missing/compromise", api.key, "404"),
        ("GET", "/api/v1/webhooks/we_missing", api.key, "404"),
        ("GET", "/api/v1/messages/msg_missing", api.key, "404"),
        ("DELETE", "/api/v1/suppressions/+256701521269", api.key, "404"),
    ]
    for method, url, key, status in probes:
        headers = api.headers(key or other_key)
        answer = await api.client.request(method, url, headers=headers)
        assert str(answer.status_code) == status, (method, url, answer.text)
        template = next(p for (m, p) in ops if m == method and _matches(p, url.split("?")[0]))
        assert status in ops[(method, template)]["responses"], (method, template, status)


def _matches(template: str, path: str) -> bool:
    parts, actual = template.split("/"), path.split("/")
    return len(parts) == len(actual) and all(
        p == a or (p.startswith("{") and p.endswith("}"))
        for p, a in zip(parts, actual, strict=True)
    )


async def test_phone_parameters_are_constrained(api: Any) -> None:
    document = await _document(api)
    seen = 0
    for (_method, _path), operation in _operations(document).items():
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "phone":
                seen += 1
                schema = parameter["schema"]
                assert schema["maxLength"] <= 32 and schema["pattern"], schema
    assert seen == 5  # GET/PUT/DELETE consents, DELETE suppressions, privacy export
    # Outside the documented form: refused as invalid input, never parsed as a number.
    for bad in ("1" * 40, "abc%20def"):
        refused = await api.client.get(f"/api/v1/consents/{bad}", headers=api.headers())
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_phone_number"


async def test_the_send_operation_is_built_from_its_models(api: Any) -> None:
    document = await _document(api)
    schemas = document["components"]["schemas"]
    for path in ("/api/v1/messages/sms", "/api/v1/developers/sms"):
        operation = document["paths"][path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/SendBody"}
        assert {"to", "message", "from", "callbackUrl", "scheduledFor"} <= set(
            schemas["SendBody"]["properties"]
        )
        created = operation["responses"]["201"]["content"]["application/json"]["schema"]
        assert created == {"$ref": "#/components/schemas/MessageView"}
        assert {"id", "recipients", "segments", "encoding"} <= set(
            schemas["MessageView"]["required"]
        )
        assert "409" in operation["responses"] and "413" in operation["responses"]


async def test_info_version_is_the_package_version(api: Any) -> None:
    import importlib.metadata

    document = await _document(api)
    assert document["info"]["version"] == importlib.metadata.version("msgine")


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/v1/webhooks/we_x", "DELETE, GET, PATCH"),
        ("/api/v1/consents/+256701521269", "DELETE, GET, PUT"),
        ("/api/v1/keys", "GET, POST"),
        ("/api/v1/messages/sms", "POST"),
        ("/api/v1/developers/sms", "POST"),
    ],
)
@pytest.mark.parametrize("method", ["OPTIONS", "PUT"])
async def test_an_unsupported_method_names_every_allowed_one(
    api: Any, path: str, methods: str, method: str
) -> None:
    if method == "PUT" and "PUT" in methods:
        return
    answer = await api.client.request(method, path, headers=api.headers())
    assert answer.status_code == 405
    assert answer.headers["allow"] in (methods, methods.replace("GET", "GET, HEAD"))
    assert answer.json()["error"]["code"] == "method_not_allowed"


# --- schemathesis against the real server ----------------------------------------------------

#: Everything but the two checks that need what a schema cannot say: ``positive_data_acceptance``
#: (a schema-valid number can still be no real number, a valid URL can resolve to a private
#: address) and ``object_level_authorization`` (two accounts; tests/security covers that).
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "use_after_free",
        "ensure_resource_availability",
        "ignored_auth",
    )
)
#: Operations that can take the testing key away from the run (revoking or rotating it with
#: no grace): run last, on their own.
KEY_KILLERS = ("revoke_key", "compromise_key", "rotate_key")
#: Cases per operation and phase in CI; docs/security-testing.md has the larger local run.
MAX_EXAMPLES = int(os.environ.get("MSGINE_SCHEMATHESIS_EXAMPLES", "12"))


def schemathesis_run(gw: Gateway, cwd: Path, *selection: str) -> tuple[int, str]:
    """One ``schemathesis run`` against the gateway: (exit code, its output)."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"http://127.0.0.1:{gw.port}/openapi.json",
        "--header",
        f"X-Api-Key: {gw.api_key}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--mode",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--seed",
        os.environ.get("MSGINE_SCHEMATHESIS_SEED", "20261202"),
        "--request-timeout",
        "10",
        "--no-color",
        *selection,
    ]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=420)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_violation(tmp_path: Path) -> None:
    """Every operation, positive and negative cases, the stateful links: no 5xx, every answer
    as documented (status, content type, headers, body), invalid input refused."""
    env = gateway_env(
        tmp_path,
        # The run is one client making thousands of requests, authenticated or not on purpose.
        MSGINE_RATE_LIMIT_PER_KEY="1000000/minute",
        MSGINE_RATE_LIMIT_PER_ACCOUNT="1000000/minute",
        MSGINE_RATE_LIMIT_PER_IP="1000000/minute",
        MSGINE_RATE_LIMIT_PER_RECIPIENT="1000000/minute",
        MSGINE_AUTH_FAILURE_LIMIT="1000000/minute",
    )
    gw = start_gateway(env, cwd=tmp_path)
    try:
        started = time.monotonic()
        exclude = [arg for op in KEY_KILLERS for arg in ("--exclude-operation-id", op)]
        include = [arg for op in KEY_KILLERS for arg in ("--include-operation-id", op)]
        outputs = []
        for selection in (exclude, include):
            code, output = schemathesis_run(gw, tmp_path, *selection)
            outputs.append(output)
            assert code == 0, output[-6000:]
        elapsed = time.monotonic() - started
    finally:
        gw.stop()
    summaries = [
        line.strip() for out in outputs for line in out.splitlines() if " generated, " in line
    ]
    print(f"schemathesis: {summaries} in {elapsed:.0f} s")
    server_log = "".join(p.read_text() for p in tmp_path.glob("gateway-*.log"))
    assert "unhandled_error" not in server_log


@pytest.mark.parametrize("value", ["", "k" * 256])
async def test_an_idempotency_key_outside_its_documented_length_is_refused(
    api: Any, value: str
) -> None:
    """Found by schemathesis: an empty header was ignored, so a client's retry sent twice."""
    sent = await api.client.post(
        "/api/v1/messages/sms",
        json={"to": "+256701521269", "message": "Hi"},
        headers={**api.headers(), "Idempotency-Key": value},
    )
    assert sent.status_code == 400, sent.text
    assert sent.json()["error"]["details"]["field"] == "Idempotency-Key"
    in_body = await api.send(to="+256701521269", message="Hi", idempotencyKey=value)
    assert in_body.status_code == 400
