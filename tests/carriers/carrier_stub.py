"""A carrier kind for the framework's tests, built on the registry like any real kind.

Its behaviour is its options, so tests change it with ``update_carrier`` (which also exercises
the worker's rebuild). It keeps a carrier-side log (JSON lines) of every submit it received, so
a test counts what "the carrier" saw, independently of the gateway's own records.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

KIND = "stub"


class StubOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    behaviour: Literal["accept", "failover", "retry", "fail", "raise", "hang"] = "accept"
    log_path: str | None = None
    down: bool = False
    retry_after: float | None = None
    detail: str | None = None


class StubCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr


def carrier_id(submit_key: str) -> str:
    return f"stub-{submit_key}"


class StubCarrier:
    """A connected carrier: started with the gateway's events sink, which tests call."""

    def __init__(self, name: str, options: StubOptions, credentials: StubCredentials) -> None:
        self.name = name
        self.options = options
        self._token = credentials.token
        self.events: Any = None
        self.stopped = False

    async def start(self, events: Any) -> None:
        self.events = events

    async def stop(self) -> None:
        self.stopped = True

    def health(self) -> Any:
        from msgine.server.carriers import CarrierHealth

        if self.options.down:
            return CarrierHealth(state="down", binds_up=0, binds_wanted=1, detail="bind refused")
        return CarrierHealth(state="up", binds_up=1, binds_wanted=1, window_in_use=0)

    def _log(self, request: Any) -> None:
        if self.options.log_path:
            line = {"carrier": self.name, "key": request.submit_key, "to": request.to}
            with Path(self.options.log_path).open("a") as log:
                log.write(json.dumps(line) + "\n")
                log.flush()

    async def submit(self, request: Any) -> Any:
        from msgine.server.carriers import SubmitResult

        behaviour = self.options.behaviour
        detail = self.options.detail
        if behaviour == "failover":
            return SubmitResult(accepted=False, failover=True, error_code="unbound", detail=detail)
        if behaviour == "retry":
            return SubmitResult(
                accepted=False,
                retryable=True,
                error_code="throttled",
                retry_after=self.options.retry_after,
                detail=detail or "ESME_RTHROTTLED",
            )
        if behaviour == "fail":
            return SubmitResult(accepted=False, error_code="invalid_destination", detail=detail)
        self._log(request)
        if behaviour == "raise":
            raise ConnectionResetError("connection lost with the submit in flight")
        if behaviour == "hang":
            await asyncio.Event().wait()
        return SubmitResult(accepted=True, carrier_message_id=carrier_id(request.submit_key))


def register() -> None:
    from msgine.server.carriers import CarrierKind, register_kind

    register_kind(
        KIND,
        lambda: CarrierKind(
            name=KIND,
            options=StubOptions,
            credentials=StubCredentials,
            build=lambda ctx: StubCarrier(ctx.name, ctx.options, ctx.credentials),  # type: ignore[arg-type]
        ),
    )


def submits(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
