"""``msgine privacy`` and ``msgine retention`` against a real gateway process."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from compliance_helpers import PHONE

pytestmark = pytest.mark.slow  # a process per CLI run: scheduled first (see tests/conftest.py)


def _call(gateway: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    return httpx.request(method, f"{gateway.base_url}{path}", headers=headers, timeout=10, **kwargs)


def _wait_until_done(gateway: Any, message_id: str) -> None:
    """Until the gateway's worker has finished the message (it runs in the gateway process)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = _call(gateway, "GET", f"/messages/{message_id}").json()["status"]
        if status in ("delivered", "failed"):
            return
        time.sleep(0.05)
    raise AssertionError("the gateway did not finish the message")


def test_cli_export_erase_export(gateway: Any) -> None:
    sent = _call(gateway, "POST", "/messages/sms", json={"to": PHONE, "message": "CLI text"})
    assert sent.status_code == 201, sent.text
    assert _call(gateway, "POST", "/simulator/inbound", json={"from": PHONE, "message": "STOP"})

    export = json.loads(gateway.cli("privacy", "export", "--phone", PHONE).stdout)
    assert export["phone"] == PHONE
    [account] = export["accounts"]
    assert [m["content"] for m in account["messages"] if m["id"] == sent.json()["id"]] == [
        "CLI text"
    ]
    assert account["suppression"]["phone"] == PHONE

    erased = json.loads(gateway.cli("privacy", "erase", "--phone", PHONE, "--yes").stdout)
    assert erased["erased"] is True
    assert erased["accounts"][0]["suppressionKept"] is True

    again = json.loads(gateway.cli("privacy", "export", "--phone", "+256 701 521269").stdout)
    [left] = again["accounts"]  # only the keyed block remains
    assert left["messages"] == left["inboundMessages"] == left["events"] == []
    assert left["suppression"]["phone"] is None
    message = _call(gateway, "GET", f"/messages/{sent.json()['id']}").json()
    assert (message["to"], message["content"]) == ([None], None)


def test_cli_export_of_an_unknown_number_is_empty(gateway: Any) -> None:
    export = json.loads(gateway.cli("privacy", "export", "--phone", PHONE).stdout)
    assert export["accounts"] == []


def test_cli_rejects_a_bad_number(gateway: Any) -> None:
    result = gateway.cli("privacy", "erase", "--phone", "0701521269", check=False)
    assert result.returncode != 0
    assert result.stderr.startswith("error:")
    assert "0701521269" not in result.stderr


def test_cli_retention_purge(gateway: Any) -> None:
    sent = _call(gateway, "POST", "/messages/sms", json={"to": PHONE, "message": "Old"})
    _wait_until_done(gateway, sent.json()["id"])
    kept = json.loads(gateway.cli("retention", "purge").stdout)
    assert all(sum(c.values()) == 0 for c in kept["accounts"].values())

    purged = json.loads(gateway.cli("retention", "purge", "--older-than-days", "0", "--yes").stdout)
    assert purged["olderThanDays"] == 0
    [counts] = purged["accounts"].values()
    assert counts["messages"] == 1
    assert _call(gateway, "GET", f"/messages/{sent.json()['id']}").json()["content"] is None

    bad = gateway.cli("retention", "purge", "--older-than-days", "-1", check=False)
    assert bad.returncode != 0


def test_numbers_in_paths_and_queries_stay_out_of_the_gateway_log(gateway: Any) -> None:
    assert _call(
        gateway, "PUT", f"/consents/{PHONE}", json={"purpose": "marketing", "source": "form"}
    ).is_success
    assert _call(gateway, "GET", "/privacy/export", params={"phone": PHONE}).is_success
    assert _call(gateway, "DELETE", f"/suppressions/{PHONE}").status_code == 404
    assert _call(gateway, "POST", "/privacy/erase", json={"phone": PHONE}).is_success
    gateway.stop()
    log = (Path(gateway.root) / f"gateway-{gateway.port}.log").read_text()
    assert log  # the gateway did log
    for form in (PHONE, PHONE[1:], "%2B256701521269"):
        assert form not in log
