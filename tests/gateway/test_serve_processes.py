"""``msgine serve --processes N``: several API processes on one port, on PostgreSQL.

One gateway of two processes serves the whole module (module-scoped: starting it costs a few
seconds). Connections are told apart by the process holding their server side socket. SQLite's
refusal of several processes is in tests/cli/test_cli_serve.py.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator

import psutil
import pytest

from support import Gateway, gateway_env, postgres_database, require_service, start_gateway

CONNECTIONS = 24  # spread by the kernel over two sockets: all on one is a 2**-23 chance
SEND = {"to": "+256701521269", "message": "Hello from MsGine"}


@pytest.fixture(scope="module")
def gateway_of_two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    root = tmp_path_factory.mktemp("processes")
    with postgres_database() as url:
        # Connections stay open across the CLI commands a test runs (seconds on a busy box).
        env = gateway_env(
            root,
            url,
            MSGINE_RATE_LIMIT_PER_IP="1000000/minute",
            MSGINE_KEEPALIVE_TIMEOUT="120",
            MSGINE_AUTH_FAILURE_LIMIT="1000/minute",  # the refusals below are expected
        )
        gw = start_gateway(env, cwd=root, args=("--processes", "2", "--no-worker"))
        try:
            _wait_until_listening(gw, count=2)
            yield gw
        finally:
            gw.stop()


def _wait_until_listening(gw: Gateway, count: int) -> None:
    """``start_gateway`` returns once one process answers; the other may still be starting."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listening = [
            child
            for child in psutil.Process(gw.process.pid).children()
            if any(
                sock.status == psutil.CONN_LISTEN and sock.laddr.port == gw.port
                for sock in child.net_connections(kind="tcp")
            )
        ]
        if len(listening) == count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{len(listening)} of {count} processes listening")


def _connections_by_process(gw: Gateway) -> dict[int, list[http.client.HTTPConnection]]:
    """Fresh keep-alive connections to the gateway, grouped by the pid serving each."""
    connections = []
    for _ in range(CONNECTIONS):
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b'{"status":"ok"}'
        connections.append(conn)
    served_by: dict[int, int] = {}  # client port -> pid
    for child in psutil.Process(gw.process.pid).children():
        for sock in child.net_connections(kind="tcp"):
            if sock.raddr and sock.laddr.port == gw.port:
                served_by[sock.raddr.port] = child.pid
    grouped: dict[int, list[http.client.HTTPConnection]] = {}
    for conn in connections:
        assert conn.sock is not None
        grouped.setdefault(served_by[conn.sock.getsockname()[1]], []).append(conn)
    return grouped


def _send(conn: http.client.HTTPConnection, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request("POST", "/api/v1/messages/sms", body=json.dumps(SEND), headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def test_both_processes_serve_the_port(gateway_of_two: Gateway) -> None:
    grouped = _connections_by_process(gateway_of_two)
    children = {child.pid for child in psutil.Process(gateway_of_two.process.pid).children()}
    assert len(grouped) == 2
    assert set(grouped) <= children
    for connections in grouped.values():
        assert _send(connections[0], gateway_of_two.api_key) == 201


def test_a_revoked_key_is_refused_at_once_by_every_process(gateway_of_two: Gateway) -> None:
    gw = gateway_of_two
    created = json.loads(gw.cli("keys", "create", "--name", "revoke-me", "--json").stdout)
    grouped = _connections_by_process(gw)
    assert len(grouped) == 2
    for connections in grouped.values():  # each process has used the key
        assert {_send(conn, created["key"]) for conn in connections} == {201}
    gw.cli("keys", "revoke", created["id"], "--yes")
    refused = [_send(conn, created["key"]) for group in grouped.values() for conn in group]
    again = [_send(conn, created["key"]) for group in grouped.values() for conn in group]
    assert set(refused + again) == {401}
    # The gateway's own key still works everywhere: the refusals are the revocation's.
    assert {_send(group[0], gw.api_key) for group in grouped.values()} == {201}
