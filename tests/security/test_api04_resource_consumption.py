"""API4:2023 Unrestricted resource consumption, against a real ``msgine serve`` over sockets.

Headers are capped in size and count before they are buffered, a client that sends its request
head or body too slowly is cut off, the number of open connections is capped, and bodies stay
capped at 64 KiB. Each attack is bounded: a few connections, short limits set through the
operator's settings.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Gateway, gateway_env, start_gateway

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
MAX_CONNECTIONS = 8


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root: Path = tmp_path_factory.mktemp("api04")
    env = gateway_env(
        root,
        MSGINE_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        MSGINE_BODY_TIMEOUT=str(BODY_TIMEOUT),
        MSGINE_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        MSGINE_AUTH_FAILURE_LIMIT="1000/minute",
    )
    gw = start_gateway(env, cwd=root)
    try:
        yield gw
    finally:
        gw.stop()


def _connect(gw: Gateway, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=timeout)
    return sock


def _read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or the socket's timeout)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def _status(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer[9:12])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """(what the server sent, when it closed), failing if it is still open after ``seconds``."""
    started = time.monotonic()
    sock.settimeout(seconds)
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open over {seconds} s") from None
    except ConnectionResetError:
        pass
    return answer, time.monotonic() - started


def test_a_50_mb_header_is_refused_before_it_is_read(limited: Gateway) -> None:
    before = _rss_kib(limited.process.pid)
    sock = _connect(limited)
    sent = 0
    chunk = b"a" * (1024 * 1024)

    def flood() -> None:
        nonlocal sent
        try:
            sock.sendall(b"GET /api/v1/messages HTTP/1.1\r\nHost: x\r\nX-Api-Key: ")
            for _ in range(50):
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\n\r\n")
        except OSError:
            pass  # the server closed the connection: what we want

    started = time.monotonic()
    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    answer = _read_answer(sock)
    sender.join(timeout=10)
    elapsed = time.monotonic() - started
    sock.close()
    assert _status(answer) == 431, answer[:200]
    assert b'"code":"headers_too_large"' in answer
    assert elapsed < 5
    assert sent < 10 * 1024 * 1024, "the server went on reading the header"
    grown = _rss_kib(limited.process.pid) - before
    assert grown < 20 * 1024, f"server memory grew by {grown} KiB"


def test_too_many_header_fields_are_refused(limited: Gateway) -> None:
    sock = _connect(limited)
    fields = b"".join(b"X-F%d: v\r\n" % n for n in range(500))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    answer = _read_answer(sock)
    sock.close()
    assert _status(answer) == 431, answer[:200]


def test_headers_within_the_limits_are_served(limited: Gateway) -> None:
    sock = _connect(limited)
    fields = b"".join(b"X-F%d: %s\r\n" % (n, b"v" * 200) for n in range(60))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + fields + b"\r\n")
    answer = _read_answer(sock)
    sock.close()
    assert _status(answer) == 200, answer[:200]


def test_slow_request_heads_are_cut_off(limited: Gateway) -> None:
    socks = [_connect(limited) for _ in range(4)]
    for sock in socks:
        sock.sendall(b"GET /api/v1/messages HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    idle = _connect(limited)  # connects and never says anything
    for sock in [*socks, idle]:
        answer, elapsed = _closed_within(sock, HEADER_TIMEOUT + 3)
        sock.close()
        assert _status(answer) == 408, answer[:200]
        assert elapsed < HEADER_TIMEOUT + 3


def test_a_head_trickled_in_byte_by_byte_is_cut_off(limited: Gateway) -> None:
    """The deadline is for the whole head, not between two bytes (the classic slowloris)."""
    sock = _connect(limited)
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    try:
        for _ in range(40):
            sock.sendall(b"X")
            time.sleep(0.1)
    except OSError:
        pass
    answer, _ = _closed_within(sock, HEADER_TIMEOUT + 3)
    sock.close()
    assert _status(answer) == 408, answer[:200]
    assert time.monotonic() - started < HEADER_TIMEOUT + 4


def test_slow_request_bodies_are_cut_off(limited: Gateway) -> None:
    socks = [_connect(limited) for _ in range(3)]
    for sock in socks:
        sock.sendall(
            b"POST /api/v1/messages/sms HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n"
            b"X-Api-Key: " + limited.api_key.encode() + b'\r\n\r\n{"to":'
        )
    for sock in socks:
        answer, elapsed = _closed_within(sock, BODY_TIMEOUT + 3)
        sock.close()
        assert _status(answer) in (408, None), answer[:200]
        assert elapsed < BODY_TIMEOUT + 3


def test_connections_beyond_the_cap_are_refused_at_once(limited: Gateway) -> None:
    held = [_connect(limited) for _ in range(MAX_CONNECTIONS)]
    time.sleep(0.2)  # the server has accepted them all
    try:
        extra = _connect(limited, timeout=HEADER_TIMEOUT / 2)
        answer, _ = _closed_within(extra, HEADER_TIMEOUT / 2)
        extra.close()
        assert _status(answer) == 503, answer[:200]
    finally:
        for sock in held:
            sock.close()
    # Once they are gone, the gateway serves again.
    time.sleep(0.3)
    sock = _connect(limited)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _status(_read_answer(sock)) == 200
    sock.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bodies_stay_capped_at_64_kib(limited: Gateway, chunked: bool) -> None:
    body = b'{"to":"+256701521269","message":"' + b"x" * (100 * 1024) + b'"}'
    sock = _connect(limited)
    head = (
        b"POST /api/v1/messages/sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Api-Key: " + limited.api_key.encode() + b"\r\nConnection: close\r\n"
    )
    try:
        if chunked:
            sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(body), 8192):
                part = body[start : start + 8192]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    except OSError:
        pass
    answer = _read_answer(sock)
    sock.close()
    assert _status(answer) == 413, answer[:200]
    assert b'"code":"payload_too_large"' in answer
