"""Gateway logging: JSON lines through ONE redaction step, plus a separate security log.

structlog renders both its own events and stdlib records (uvicorn, SQLAlchemy, libraries) through a
single :class:`structlog.stdlib.ProcessorFormatter`, whose last steps are :func:`redact` and the
renderer. Redacting at the formatter rather than at each call site means a forgotten field or a
library's message cannot bypass it. structlog events are redacted once more before they leave
structlog (``redact`` is idempotent), so handlers added by others never see raw values either.
Security events go to the logger ``msgine.security``: to stderr like everything else and, when
configured, appended to a file the operator chooses.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import cast

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from msgine._keyformat import redact as redact_key

SECURITY_LOGGER = "msgine.security"
REDACTED = "[redacted]"
PHONE = "[phone]"
_MAX_DEPTH = 12

#: Field names whose values are secrets or personal data, compared after lower-casing and
#: mapping "-" to "_". Names ending in one of _SENSITIVE_SUFFIXES are treated the same way.
SENSITIVE_FIELDS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "x_api_key",
        "secret",
        "password",
        "passwd",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "token",
        "master_key",
        "to",
        "from",
        "from_",
        "phone",
        "phone_number",
        "msisdn",
        "recipient",
        "recipients",
        "sender",
        "message",
        "content",
        "body",
        "text",
    }
)
_SENSITIVE_SUFFIXES = ("_key", "_secret", "_token", "_password", "_phone")

_KEY = re.compile(r"msgine_(?:live|test)_[0-9A-Za-z]+")
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=_\-]+")
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
# "+" (or its URL encoding) and 7-15 digits, single spaces, dots, dashes or brackets between them.
_PHONE = re.compile(r"(?<![\w+])(?:\+|%2[Bb])\d(?:[ .()\-]{0,2}\d){6,14}(?!\d)")
_QUERY_PARAM = re.compile(
    r"(?i)([?&;](?:to|from|phone|msisdn|message|text|key|api_key|token|secret|password)=)[^&\s\"']*"
)


def _sensitive_name(name: str) -> bool:
    normal = name.lower().replace("-", "_")
    return normal in SENSITIVE_FIELDS or normal.endswith(_SENSITIVE_SUFFIXES)


def _redact_text(text: str) -> str:
    text = _KEY.sub(lambda m: redact_key(m.group(0)), text)
    text = _WEBHOOK_SECRET.sub("whsec_[redacted]", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _QUERY_PARAM.sub(lambda m: m.group(1) + REDACTED, text)
    return _PHONE.sub(PHONE, text)


def redact(value: object, _depth: int = 0) -> object:
    """``value`` with secrets and personal data masked, for logging only.

    Mappings and sequences are copied recursively (values under sensitive field names become
    ``"[redacted]"``); strings are scrubbed of MsGine keys, webhook secrets, Bearer/Basic
    credentials, sensitive query parameters and "+"-prefixed phone numbers. Numbers, booleans and
    None pass through; any other object is logged as its scrubbed ``str`` because its ``repr``
    may hold a secret. Bare digit strings cannot be told from ids, so only field names catch them.
    """
    if _depth > _MAX_DEPTH:
        return "[truncated]"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, bytes | bytearray):
        return _redact_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if _sensitive_name(str(k)) else redact(v, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item, _depth + 1) for item in value]
    return _redact_text(str(value))


def _redact_processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return cast(EventDict, redact(event_dict))


def _drop_terminal_colours(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn adds an ANSI-coloured copy of each message for terminals; JSON logs do not want it.
    event_dict.pop("color_message", None)
    return event_dict


_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _formatter(*, json: bool) -> structlog.stdlib.ProcessorFormatter:
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_terminal_colours,
            # Tracebacks become text before redaction: exception messages can carry secrets.
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
    )


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


class _SecurityOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == SECURITY_LOGGER or record.name.startswith(SECURITY_LOGGER + ".")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current ``sys.stderr``, even if it was replaced after configuration."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_installed: list[logging.Handler] = []


def _open_private(path: str) -> None:
    """Create the security log readable by its owner only (it holds addresses and key ids)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))


def reset_logging() -> None:
    """Remove the handlers :func:`configure_logging` installed (tests, embedding)."""
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
        logging.getLogger(SECURITY_LOGGER).removeHandler(handler)
        handler.close()
    _installed.clear()


def configure_logging(
    *, level: str = "INFO", json: bool = True, security_log_path: str | None = None
) -> None:
    """Route structlog and stdlib logging through redaction to stderr (and the security log).

    Idempotent: calling it again replaces the previous handlers. uvicorn's own loggers are made
    to propagate here; run uvicorn with ``log_config=None`` so it does not reinstall its handlers.
    """
    reset_logging()
    numeric_level = logging.getLevelNamesMapping().get(level.upper())
    if numeric_level is None:
        raise ValueError(f"unknown log level: {level!r}")
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            # Also redact here, so no other handler on the root logger sees raw values.
            _redact_processor,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    stderr = _StderrHandler()
    stderr.setFormatter(_formatter(json=json))
    root = logging.getLogger()
    root.addHandler(stderr)
    root.setLevel(numeric_level)
    _installed.append(stderr)

    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)  # our level, whatever uvicorn's config set
    # uvicorn's access line holds the raw path (a phone number in /consents/00256...); the
    # gateway's own access log (msgine.access) names the route template instead. Dropped even
    # when uvicorn is started by hand without access_log=False.
    access = logging.getLogger("uvicorn.access")
    access.filters = [f for f in access.filters if not isinstance(f, _DropAll)]
    access.addFilter(_DropAll())

    # httpx logs every request's full URL at INFO: webhook URLs and carrier callback URLs can
    # hold tokens that the redaction cannot recognise, so its request lines are never kept.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))

    security = logging.getLogger(SECURITY_LOGGER)
    # Security events are kept whatever the application log level is.
    security.setLevel(min(numeric_level, logging.INFO))
    if security_log_path:
        _open_private(security_log_path)
        file_handler = logging.FileHandler(security_log_path, encoding="utf-8")
        file_handler.setFormatter(_formatter(json=True))
        file_handler.addFilter(_SecurityOnly())
        security.addHandler(file_handler)
        _installed.append(file_handler)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


def security_event(event: str, **fields: object) -> None:
    """Record a security-relevant event (auth failure, key revoked, audit chain broken...)."""
    get_logger(SECURITY_LOGGER).info(event, security=True, **fields)


def security_warning(event: str, **fields: object) -> None:
    """A security event an operator should look at, not routine noise (a revoked key still in
    use, a key used from an address it is not allowed from): logged at ``warning``."""
    get_logger(SECURITY_LOGGER).warning(event, security=True, **fields)
