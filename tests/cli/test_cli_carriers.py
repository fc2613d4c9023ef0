"""``msgine carriers`` and ``msgine routes`` print tables like the other commands (a header row,
one row per item), hints on stderr when there is nothing to list, and JSON with ``--json``."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import cli_env, msgine


def test_carriers_and_routes_are_tables(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert msgine(env, "init", "--json", cwd=tmp_path).returncode == 0
    empty = msgine(env, "carriers", "list")
    assert (empty.returncode, empty.stdout) == (0, "")
    assert "msgine carriers add" in empty.stderr
    assert "msgine routes add" in msgine(env, "routes", "list").stderr

    assert msgine(env, "carriers", "add", "sim-ug", "--kind", "simulator").returncode == 0
    [header, row] = msgine(env, "carriers", "list").stdout.splitlines()
    assert header.split() == ["NAME", "KIND", "STATE", "ID"]
    assert row.split()[:3] == ["sim-ug", "simulator", "enabled"]

    added = msgine(env, "routes", "add", "--prefix", "25670", "--carriers", "sim-ug",
                   "--price", "25", "--currency", "UGX")  # fmt: skip
    [header, row] = added.stdout.splitlines()
    assert header.split() == ["ID", "DESTINATION", "CARRIERS", "PRICE", "ACCOUNT"]
    route_id = row.split()[0]
    assert row.split() == [route_id, "+25670", "sim-ug", "25", "UGX/segment", "all", "accounts"]
    listed = msgine(env, "routes", "list").stdout.splitlines()
    assert listed == added.stdout.splitlines()
    assert msgine(env, "routes", "show", route_id).stdout == added.stdout

    status = msgine(env, "carriers", "status")
    lines = status.stdout.splitlines()
    assert lines[0].startswith("carriers: ")
    assert lines[1].split() == ["NAME", "KIND", "STATE", "WORKERS", "BINDS", "WINDOW", "DETAIL"]
    [sim] = [line.split() for line in lines[2:] if line.startswith("sim-ug ")]
    assert sim == ["sim-ug", "simulator", "unknown", "0", "0/0", "0"]  # no worker has reported
    assert f"route {route_id}: no carrier serving" in status.stderr
    as_json = json.loads(msgine(env, "carriers", "status", "--json").stdout)
    assert as_json["carriers"]["sim-ug"]["state"] == "unknown"
