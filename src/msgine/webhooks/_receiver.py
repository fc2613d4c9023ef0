"""The framework-neutral part of receiving a delivery: address, signature, freshness, dedupe.

The FastAPI, Flask and Django integrations only adapt requests and responses around
``WebhookReceiver.check``. Every refusal is logged on ``msgine.security`` with the reason and
client address; never the secret, the signature or the payload (which holds phone numbers).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._dedupe import DedupeStore, Deduplicator
from ._ipallow import IpAllowList
from ._secrets import SecretSpec, SecretUnavailableError, resolve
from ._verify import HeadersLike, WebhookVerificationError, WebhookVerifier

security_log = logging.getLogger("msgine.security")

ACCEPTED, DUPLICATE, UNAUTHORIZED, FORBIDDEN, UNAVAILABLE = 200, 200, 401, 403, 503


@dataclass(frozen=True, slots=True)
class Decision:
    """``event`` is set only when the caller must process it; ``status`` is the HTTP answer
    otherwise (200 for an acknowledged duplicate)."""

    status: int
    event: dict[str, Any] | None = None
    event_id: str | None = None
    reason: str | None = None

    @property
    def duplicate(self) -> bool:
        return self.event is None and self.reason == "duplicate"

    def body(self) -> dict[str, str]:
        if self.duplicate:
            return {"status": "duplicate"}
        return {"error": _PUBLIC_ERRORS.get(self.status, "error")}


_PUBLIC_ERRORS = {
    UNAUTHORIZED: "webhook verification failed",
    FORBIDDEN: "address not allowed",
    UNAVAILABLE: "webhook secret unavailable",
}


class WebhookReceiver:
    def __init__(
        self,
        secret: SecretSpec,
        *,
        tolerance: int = 300,
        dedupe: Deduplicator | DedupeStore | None = None,
        allow_list: IpAllowList | None = None,
        allow_legacy: bool = False,
    ) -> None:
        if allow_legacy and dedupe is None:
            # x-msgine-signature signs no timestamp: only remembering event ids stops replays.
            raise WebhookVerificationError(
                "bad_configuration", "allow_legacy needs a dedupe store (dedupe=...)"
            )
        self._secrets = resolve(secret)
        self.tolerance = tolerance
        self.allow_legacy = allow_legacy
        self.dedupe = (
            dedupe if isinstance(dedupe, Deduplicator) or dedupe is None else Deduplicator(dedupe)
        )
        self.allow_list = allow_list
        self._verifier: tuple[tuple[str, ...], WebhookVerifier] | None = None

    def __repr__(self) -> str:
        return f"WebhookReceiver(tolerance={self.tolerance}, dedupe={self.dedupe is not None})"

    def _current_verifier(self) -> WebhookVerifier:
        secrets = self._secrets()
        cached = self._verifier
        if cached is None or cached[0] != secrets:
            cached = (
                secrets,
                WebhookVerifier(
                    secrets,
                    self.tolerance,
                    allow_legacy=self.allow_legacy,
                    dedupe=self.dedupe.store if self.dedupe is not None else None,
                ),
            )
            self._verifier = cached
        return cached[1]

    def check(
        self,
        payload: bytes | str,
        headers: HeadersLike,
        peer: str | None,
        x_forwarded_for: str | None = None,
    ) -> Decision:
        client_ip = peer
        if self.allow_list is not None:
            client_ip = self.allow_list.client_ip(peer, x_forwarded_for)
            if not self.allow_list.allows(client_ip):
                return self._refuse(FORBIDDEN, "ip_not_allowed", client_ip)
        try:
            # A legacy delivery's id is deduplicated just below, around the handler.
            event, _ = self._current_verifier().verify_delivery(payload, headers)
        except SecretUnavailableError:
            security_log.error(
                "webhook secret unavailable",
                extra={"security_event": "webhook_secret_unavailable", "client_ip": client_ip},
            )
            return Decision(UNAVAILABLE, reason="secret_unavailable")
        except WebhookVerificationError as exc:
            return self._refuse(UNAUTHORIZED, exc.reason, client_ip)
        event_id = _event_id(headers, event)
        if self.dedupe is not None and event_id is not None and not self.dedupe.claim(event_id):
            security_log.info(
                "duplicate webhook delivery acknowledged",
                extra={
                    "security_event": "webhook_duplicate",
                    "event_id": event_id,
                    "client_ip": client_ip,
                },
            )
            return Decision(DUPLICATE, event_id=event_id, reason="duplicate")
        return Decision(ACCEPTED, event=event, event_id=event_id)

    def succeeded(self, decision: Decision) -> None:
        if self.dedupe is not None and decision.event_id is not None:
            self.dedupe.complete(decision.event_id)

    def failed(self, decision: Decision) -> None:
        """The handler raised: release the claim so the sender's retry is processed."""
        if self.dedupe is not None and decision.event_id is not None:
            self.dedupe.release(decision.event_id)

    @staticmethod
    def _refuse(status: int, reason: str, client_ip: str | None) -> Decision:
        security_log.warning(
            "webhook delivery refused",
            extra={"security_event": "webhook_refused", "reason": reason, "client_ip": client_ip},
        )
        return Decision(status, reason=reason)


def _event_id(headers: HeadersLike, event: Mapping[str, Any]) -> str | None:
    """The verified delivery's event id: body ``id`` (signed), else ``webhook-id`` (also signed)."""
    value = event.get("id")
    if isinstance(value, str) and value:
        return value[:255]
    items: Sequence[tuple[Any, Any]] | Any = (
        headers.items() if hasattr(headers, "items") else headers
    )
    for key, header_value in items:
        if str(key).lower() == "webhook-id" and header_value:
            return str(header_value)[:255]
    return None
