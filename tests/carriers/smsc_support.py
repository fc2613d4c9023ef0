"""The Node SMSC (tests/carriers/smsc/smsc.js, on the npm ``smpp`` package) as a test peer.

``npm ci`` installs the locked package once per test session (``.ci/run`` does it before the
tests too). Without node or npm the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from msgine.server.carriers import InboundMessage, Receipt, SubmitRequest
from msgine.server.carriers.smpp import SmppCredentials, SmppOptions
from msgine.server.messages._text import segment_info

SMSC_DIR = Path(__file__).with_name("smsc")
SYSTEM_ID, PASSWORD = "msgine", "s3cret"
IN_CI = os.environ.get("CI") == "true"
TO = "+256701521269"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"the Node SMSC is required under CI: {reason}")
    pytest.skip(f"the Node SMSC is unavailable: {reason}")


def install_smsc() -> None:
    """``npm ci`` in tests/carriers/smsc unless its node_modules is already there."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node or npm is not installed")
    if (SMSC_DIR / "node_modules" / "smpp").is_dir():
        return
    try:
        subprocess.run(
            [str(npm), "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=SMSC_DIR,
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError) as error:
        _unavailable(f"npm ci failed: {type(error).__name__}")


@dataclass
class Smsc:
    """A running Node SMSC: its SMPP port and its control channel."""

    process: subprocess.Popen[bytes]
    port: int
    control: httpx.Client

    def state(self) -> dict[str, Any]:
        return dict(self.control.get("/state").json())

    def configure(self, **settings: Any) -> None:
        self.control.post("/config", json=settings).raise_for_status()

    def drop(self) -> None:
        self.control.post("/drop").raise_for_status()

    def receipt(self, message_id: str, stat: str, *, tlv: bool = False, **extra: Any) -> None:
        body = {"messageId": message_id, "stat": stat, "tlv": tlv, **extra}
        self.control.post("/receipt", json=body).raise_for_status()

    def mo(self, sender: str, text: str, **extra: Any) -> None:
        self.control.post("/mo", json={"from": sender, "text": text, **extra}).raise_for_status()

    def reset(self) -> None:
        self.control.post("/reset").raise_for_status()

    def options(self, **overrides: Any) -> SmppOptions:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "reconnect_first": 0.05,
            "reconnect_max": 0.5,
            "response_timeout": 5.0,
        }
        settings.update(overrides)
        return SmppOptions(**settings)

    def stop(self) -> None:
        self.control.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def start_smsc(*extra_args: str) -> Smsc:
    install_smsc()
    process = subprocess.Popen(
        ["node", "smsc.js", "--system-id", SYSTEM_ID, "--password", PASSWORD, *extra_args],
        cwd=SMSC_DIR,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError("the Node SMSC did not start")
    ports = json.loads(line)
    control = httpx.Client(base_url=f"http://127.0.0.1:{ports['control']}", timeout=10)
    return Smsc(process, int(ports["smpp"]), control)


def credentials(password: str = PASSWORD) -> SmppCredentials:
    return SmppCredentials(system_id=SYSTEM_ID, password=password)


@dataclass
class MemoryEvents:
    """A CarrierEvents sink in memory; ``fail`` makes the next stores raise (not stored)."""

    receipts: list[Receipt] = field(default_factory=list)
    messages: list[InboundMessage] = field(default_factory=list)
    fail: int = 0
    delay: float = 0.0

    async def receipt(self, carrier: str, receipt: Receipt) -> None:
        await self._store()
        self.receipts.append(receipt)

    async def inbound(self, carrier: str, message: InboundMessage) -> None:
        await self._store()
        self.messages.append(message)

    async def _store(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail > 0:
            self.fail -= 1
            raise RuntimeError("storage unavailable")


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def request(content: str = "Hello", key: str = "k1", **extra: Any) -> SubmitRequest:
    """A submit as the worker makes it, with the segmenter's encoding and count."""
    info = segment_info(content)
    return SubmitRequest(
        submit_key=key,
        to=extra.pop("to", TO),
        sender=extra.pop("sender", "MsGine"),
        content=content,
        mode="live",
        encoding=info.encoding,
        segments=info.segments,
        **extra,
    )
