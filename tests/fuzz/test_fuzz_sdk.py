"""Fuzzing what the SDK and the leak scanner read from others: server answers and files.

The SDK turns any answer into a result or an ``MsGineError`` whose text is safe to log; the
scanner reads any bytes and prints any path on one line.
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from typing import Any

import httpx
from fuzz_support import attempt, fuzz
from hypothesis import given
from hypothesis import strategies as st

from msgine import MsGineError, _base, _calls
from msgine._keyformat import generate_key
from msgine.server.scan import format_finding, printable, scan_paths

KEY = generate_key("live")
ERROR_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "code": st.one_of(st.text(max_size=80), st.integers(), st.none()),
        "message": st.one_of(st.text(max_size=600), st.integers(), st.lists(st.text())),
        "details": st.one_of(st.dictionaries(st.text(max_size=5), st.text(max_size=5)), st.text()),
        "retryAfter": st.one_of(
            st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=5)
        ),
    },
)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda e: json.dumps({"error": e, "meta": {"requestId": "req_1"}}), ERROR_FIELDS),
    st.builds(
        json.dumps,
        st.recursive(
            st.none() | st.integers() | st.text(max_size=10),
            lambda i: st.lists(i, max_size=3) | st.dictionaries(st.text(max_size=5), i, max_size=3),
            max_leaves=15,
        ),
    ),
    st.builds(lambda n: "[" * n, st.integers(0, 40_000)),
)
HEADERS = st.dictionaries(
    st.sampled_from(["X-Request-Id", "Retry-After", "Content-Type"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40),
    max_size=3,
)
CALLS = [
    _calls.get_message("msg_1"),
    _calls.history(),
    _calls.webhook_list(),
    _calls.key_list(),
    _calls.consent_get("+256701521269"),
    _calls.suppression_list(),
]


def _safe(text: str) -> bool:
    return not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in text)


@fuzz
@given(st.integers(100, 599), BODIES, HEADERS, st.sampled_from(CALLS))
def test_any_answer_is_a_result_or_a_loggable_sdk_error(
    status: int, body: Any, headers: dict[str, str], call: Any
) -> None:
    content = body if isinstance(body, bytes) else body.encode()
    request = httpx.Request("GET", "https://api.example.test/api/v1/x")
    raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    response = httpx.Response(status, content=content, headers=raw_headers, request=request)
    _, error = attempt(MsGineError, _base.parse_response, call, response)
    if error is None:
        assert 200 <= status < 300
        return
    assert isinstance(error, MsGineError)
    assert _safe(str(error)), str(error)
    assert len(error.message) <= 600
    retry_after = getattr(error, "retry_after", None)
    assert retry_after is None or 0 <= retry_after < 1e9


@fuzz
@given(st.text(max_size=200))
def test_printed_paths_are_one_line_and_keep_their_text(name: str) -> None:
    shown = printable(name)
    hidden = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
    assert not any(unicodedata.category(ch) in hidden for ch in shown)
    if not any(unicodedata.category(ch) in hidden or ch == "\\" for ch in name):
        assert shown == name


CONTENT = st.one_of(
    st.binary(max_size=400),
    st.builds(
        lambda a, codec, b: a + f"k={KEY}\n".encode(codec) + b,
        st.binary(max_size=50),
        st.sampled_from(["utf-8", "utf-16-le", "utf-16-be", "utf-16"]),
        st.binary(max_size=50),
    ),
    st.builds(
        lambda t, codec: t.encode(codec, "surrogatepass"),
        st.text(max_size=100),
        st.sampled_from(["utf-8", "utf-16-le", "utf-16-be"]),
    ),
)


@fuzz
@given(CONTENT, st.sampled_from(["a.txt", "master.key", "x\ny.py", "\u202egnp.exe"]))
def test_the_scanner_reads_any_bytes(content: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, name)
        with open(path, "wb") as handle:
            handle.write(content)
        findings = scan_paths([directory], history=False)
    for finding in findings:
        line = format_finding(finding)
        assert "\n" not in line and KEY not in line
    utf16_key = any(KEY.encode(c) in content for c in ("utf-16-le", "utf-16-be"))
    if KEY.encode() in content or utf16_key:
        assert any(f.key == KEY for f in findings)
