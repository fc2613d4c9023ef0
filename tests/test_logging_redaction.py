"""Every log line, from structlog or stdlib loggers, passes through redaction."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from msgine._keyformat import generate_key
from msgine._keyformat import redact as redact_key
from msgine.server.logging import (
    configure_logging,
    get_logger,
    redact,
    reset_logging,
    security_event,
)

PHONE = "+256701521269"
BODY = "Your one-time code is 918273, love from grandma"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    yield
    reset_logging()


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_clean(output: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in output
    assert "256701521269" not in output
    assert "918273" not in output


def test_structlog_and_stdlib_records_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    live = generate_key("live")
    test = generate_key("test")
    configure_logging(level="INFO")

    log = get_logger("msgine.test")
    log.info(
        f"sending with {live} to {PHONE}",
        to=[PHONE],
        message=BODY,
        headers={"X-Api-Key": live, "Authorization": f"Bearer {test}"},
        note=f"secret {SECRET} key {test}",
        count=3,
    )
    # uvicorn's own access log is dropped (the gateway logs route templates, see test_api08);
    # any other server log line holding a raw path is still redacted.
    logging.getLogger("uvicorn.error").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        f"/api/v1/consents/{PHONE}?phone=%2B256701521269&api_key={live}",
        "1.1",
        200,
    )
    logging.getLogger("some.library").warning(
        "reply to %s with auth Bearer %s", PHONE, live, extra={"text": BODY, "ip": "10.0.0.1"}
    )

    output = capsys.readouterr().err
    assert_clean(output, live, test, SECRET, BODY)
    records = lines(output)
    assert len(records) == 3
    first, access, library = records

    assert first["event"] == f"sending with {redact_key(live)} to [phone]"
    assert first["to"] == "[redacted]"
    assert first["message"] == "[redacted]"
    assert first["headers"] == {"X-Api-Key": "[redacted]", "Authorization": "[redacted]"}
    assert first["note"] == f"secret whsec_[redacted] key {redact_key(test)}"
    assert first["count"] == 3
    assert first["level"] == "info"
    assert first["logger"] == "msgine.test"

    assert access["logger"] == "uvicorn.error"
    assert access["event"] == (
        '127.0.0.1:5000 - "GET /api/v1/consents/[phone]?phone=[redacted]&api_key=[redacted] '
        'HTTP/1.1" 200'
    )
    assert library["text"] == "[redacted]"
    assert library["ip"] == "10.0.0.1"
    assert library["event"] == "reply to [phone] with auth Bearer [redacted]"


def test_exception_text_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    live = generate_key("live")
    configure_logging()
    try:
        raise RuntimeError(f"carrier rejected {live} for {PHONE}")
    except RuntimeError:
        get_logger("msgine.worker").exception("send failed")
        logging.getLogger("uvicorn.error").exception("request failed")
    output = capsys.readouterr().err
    assert_clean(output, live)
    records = lines(output)
    assert len(records) == 2
    for record in records:
        assert redact_key(live) in str(record["exception"])


def test_security_events_go_to_stderr_and_a_private_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = generate_key("live")
    path = tmp_path / "logs" / "security.jsonl"
    configure_logging(level="ERROR", security_log_path=str(path))
    security_event("auth.failed", key=live, presented=live, source_ip="203.0.113.9", phone=PHONE)
    security_event("key.revoked", key_id="key_123", reason=f"leaked in commit as {live}")
    get_logger("msgine.api").error("not a security event")

    stderr = capsys.readouterr().err
    content = path.read_text()
    assert_clean(stderr + content, live)
    file_records = lines(content)
    assert [r["event"] for r in file_records] == ["auth.failed", "key.revoked"]
    failed, revoked = file_records
    assert failed["security"] is True
    assert failed["logger"] == "msgine.security"
    assert failed["key"] == failed["phone"] == "[redacted]"
    assert failed["presented"] == redact_key(live)
    assert failed["source_ip"] == "203.0.113.9"
    assert revoked["key_id"] == "key_123"
    assert revoked["reason"] == f"leaked in commit as {redact_key(live)}"
    # Kept on stderr too, although the application level is ERROR.
    assert [r["event"] for r in lines(stderr)] == [
        "auth.failed",
        "key.revoked",
        "not a security event",
    ]
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_configure_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "security.jsonl"
    for _ in range(3):
        configure_logging(security_log_path=str(path))
    security_event("login")
    get_logger("x").info("once")
    assert len(lines(capsys.readouterr().err)) == 2
    assert len(lines(path.read_text())) == 1


def test_level_filters_application_logs(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="warning")
    get_logger("msgine.x").info("hidden")
    logging.getLogger("lib").info("hidden too")
    get_logger("msgine.x").warning("shown")
    assert [r["event"] for r in lines(capsys.readouterr().err)] == ["shown"]
    with pytest.raises(ValueError):
        configure_logging(level="chatty")


def test_console_renderer_is_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    live = generate_key("live")
    configure_logging(json=False)
    get_logger("dev").info("key", presented=live, to=PHONE)
    output = capsys.readouterr().err
    assert_clean(output, live)
    assert redact_key(live) in output


def test_redact_values() -> None:
    live = generate_key("live")
    assert redact(live) == redact_key(live)
    assert redact(f"Authorization: {live}") == f"Authorization: {redact_key(live)}"
    assert redact("bearer abc.def-ghi") == "bearer [redacted]"
    assert redact("Basic dXNlcjpwYXNz") == "Basic [redacted]"
    assert redact(SECRET) == "whsec_[redacted]"
    assert redact("call +256 701 521 269 now") == "call [phone] now"
    assert redact("call +1 (415) 555-2671") == "call [phone]"
    assert redact("at 2025-01-01T00:00:00+03:00 id 12345678") == (
        "at 2025-01-01T00:00:00+03:00 id 12345678"
    )
    assert redact("+12345") == "+12345"  # too short to be a number
    assert redact(live.encode()) == redact_key(live)
    assert redact((1, 2.5, None, True)) == [1, 2.5, None, True]
    nested = {"a": [{"password": "x", "ok": f"see {live}"}], "Phone-Number": PHONE}
    assert redact(nested) == {
        "a": [{"password": "[redacted]", "ok": f"see {redact_key(live)}"}],
        "Phone-Number": "[redacted]",
    }
    for name in (
        "apiKey",
        "X-API-KEY",
        "master_key",
        "from",
        "content",
        "body",
        "token",
        "webhook_secret",
        "access_token",
        "idempotency_key",
    ):
        assert redact({name: "v"}) == {name: "[redacted]"}, name
    assert redact({"key_id": "key_1", "status": "sent"}) == {"key_id": "key_1", "status": "sent"}


def test_unknown_objects_are_logged_as_scrubbed_text() -> None:
    live = generate_key("live")

    class Holder:
        def __str__(self) -> str:
            return f"Holder({live})"

    assert redact(Holder()) == f"Holder({redact_key(live)})"
    deep: list[object] = []
    deep.append(deep)
    assert "[truncated]" in json.dumps(redact(deep))


def test_redaction_is_idempotent() -> None:
    live = generate_key("live")
    sample = {"x": f"{live} {SECRET} {PHONE} Bearer abc", "to": PHONE, "n": [1, "+1 415 555 2671"]}
    once = redact(sample)
    assert redact(once) == once


def test_other_root_handlers_never_see_raw_structlog_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    live = generate_key("live")
    configure_logging()
    with caplog.at_level(logging.INFO):
        get_logger("msgine.api").info("auth", presented=live, to=PHONE)
    assert caplog.records
    assert live not in caplog.text
    assert PHONE not in caplog.text


def test_httpx_request_lines_are_never_kept(capsys: pytest.CaptureFixture[str]) -> None:
    # A webhook or callback URL may carry a token the redaction cannot recognise.
    configure_logging(level="DEBUG")
    url = "https://gateway.example/api/v1/carriers/at/callbacks/Zq8tokenNotToBeLogged/receipts"
    logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 200 OK"', url)
    logging.getLogger("httpcore.connection").debug("connect_tcp.started host=%s", url)
    logging.getLogger("httpx").warning("kept: warnings still show")
    output = capsys.readouterr().err
    assert "Zq8tokenNotToBeLogged" not in output
    assert "kept: warnings still show" in output
