"""What the delivery worker needs from a carrier connector."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SubmitRequest:
    """One recipient's submission. ``submit_key`` is stable across retries: a connector must
    use it to make a repeated submit return the first result instead of sending again."""

    submit_key: str
    to: str = field(repr=False)
    sender: str | None
    content: str = field(repr=False)
    mode: str


@dataclass(frozen=True)
class SubmitResult:
    accepted: bool
    carrier_message_id: str | None = None
    error_code: str | None = None
    retryable: bool = False


class Carrier(Protocol):
    """A connector. The worker calls ``submit`` once per recipient, for a whole batch at once
    (concurrently), so a connector's round trips overlap; an exception or a ``retryable``
    result puts that recipient back in the queue with backoff."""

    name: str

    async def submit(self, request: SubmitRequest) -> SubmitResult: ...
