"""Routes: the audit log (scope ``audit:read``), and the API's security signals.

``install`` registers the authentication hooks that write security events for failed and
forbidden requests, audit bursts of failed authentication from one address, and count each key's
usage (:mod:`msgine.server.api._usage`).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request

from msgine._keyformat import PREFIXES
from msgine.server import metrics
from msgine.server.api import _usage
from msgine.server.api._deps import client_ip, presented_key, require, runtime_of
from msgine.server.api._openapi import answers
from msgine.server.api._schemas import AuditPage
from msgine.server.audit import Actor, list_entries, record
from msgine.server.errors import Forbidden, Unauthorized
from msgine.server.keys import Principal
from msgine.server.logging import security_event, security_warning
from msgine.server.runtime import Runtime

router = APIRouter(tags=["audit"])
can_read = require("audit:read")

#: This many failed authentications from one address within BURST_WINDOW make one audit entry.
BURST_THRESHOLD = 10
BURST_WINDOW = timedelta(minutes=5)
#: The largest audit sequence number a query may name (a signed 64-bit column on both databases).
MAX_SEQUENCE = 2**63 - 1
#: Addresses tracked at once; the least recently failing are forgotten first.
MAX_TRACKED_ADDRESSES = 10_000


@router.get("/audit", operation_id="list_audit", **answers(AuditPage))
async def list_audit(
    request: Request,
    principal: Annotated[Principal, Depends(can_read)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_SEQUENCE, description="Entries with seq below this")
    ] = None,
) -> dict[str, Any]:
    """The caller's account's audit entries, newest first; page with ``before=nextBefore``."""
    runtime = runtime_of(request)
    entries = await runtime.db.aread(
        lambda conn: list_entries(
            conn, principal.account_id, limit=limit, before_seq=before, mode=principal.mode
        )
    )
    next_before = entries[-1]["seq"] if len(entries) == limit else None
    return {"entries": entries, "nextBefore": next_before}


def key_prefix(presented: str | None) -> str | None:
    """Only the public prefix of a presented key (``msgine_live_``), never any of its secret."""
    if not presented:
        return None
    for prefix in PREFIXES.values():
        if presented.startswith(prefix):
            return prefix
    return "other"


class FailureBursts:
    """Failed authentications per address in a sliding window; reports each burst once."""

    def __init__(self, threshold: int = BURST_THRESHOLD, window: timedelta = BURST_WINDOW) -> None:
        self.threshold = threshold
        self.window = window
        self._seen: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._quiet_until: dict[str, datetime] = {}

    def failed(self, address: str, now: datetime) -> bool:
        """Count one failure; True exactly when it completes a burst not yet reported."""
        times = self._seen.pop(address, None) or deque()
        self._seen[address] = times
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        while len(self._seen) > MAX_TRACKED_ADDRESSES:
            forgotten, _ = self._seen.popitem(last=False)
            self._quiet_until.pop(forgotten, None)
        quiet = self._quiet_until.get(address)
        if quiet is not None and now < quiet:
            return False
        if len(times) >= self.threshold:
            self._quiet_until[address] = now + self.window
            return True
        return False


async def _audit_burst(runtime: Runtime, request: Request, address: str, now: datetime) -> None:
    actor = Actor(
        name="anonymous",
        source_ip=address,
        request_id=str(getattr(request.state, "request_id", "") or "") or None,
    )
    details = {"failures": BURST_THRESHOLD, "windowSeconds": int(BURST_WINDOW.total_seconds())}
    await runtime.db.awrite(
        lambda conn: record(
            conn,
            runtime.vault,
            actor,
            "auth.failure_burst",
            now=now,
            target=address,
            outcome="failure",
            details=details,
        )
    )
    security_event("auth_failure_burst", source_ip=address, **details)


def install(app: FastAPI) -> None:
    """Security events for failed and forbidden requests, burst auditing, usage counting."""
    runtime: Runtime = app.state.runtime
    bursts = FailureBursts()

    async def on_auth(request: Request, principal: Principal | None, exc: Exception | None) -> None:
        if exc is None:
            return
        address = client_ip(request)
        common = {
            "source_ip": address,
            "request_id": getattr(request.state, "request_id", None),
            "method": request.method,
            # The route template: a concrete path can hold a phone number (/consents/{phone}).
            "route": getattr(request.scope.get("route"), "path", "unmatched"),
        }
        reason: str = getattr(exc, "reason", None) or "other"
        key_id: str | None = getattr(exc, "key_id", None)
        if key_id is None and principal is not None:
            key_id = principal.key_id
        metrics.AUTH_FAILURES.labels(reason=reason).inc()
        if isinstance(exc, Unauthorized):
            prefix = key_prefix(presented_key(request))
            # A revoked or expired key is a known key still in someone's hands: warn, by id.
            if reason in ("revoked", "expired"):
                event = "revoked_key_used" if reason == "revoked" else "expired_key_used"
                security_warning(event, key_prefix=prefix, reason=reason, key_id=key_id, **common)
            else:
                security_event("auth_failed", key_prefix=prefix, reason=reason, **common)
            now = runtime.now()
            if bursts.failed(address or _usage.UNKNOWN_ADDRESS, now):
                await _audit_burst(runtime, request, address or _usage.UNKNOWN_ADDRESS, now)
        elif isinstance(exc, Forbidden):
            scope = exc.details.get("requiredScope")
            log = security_warning if reason == "ip_not_allowed" else security_event
            log(
                "forbidden",
                reason=reason,
                required_scope=scope,
                key_id=key_id,
                **common,
            )

    app.state.auth_hooks.append(on_auth)
    _usage.install(app)
