"""What MsGine's answers mean: the one table the code and docs/carriers-http.md share.

Keys are the answer's HTTP status and error code (``error.code`` of the contract's error body),
or, for an accepted request, the status and ``errorCode`` MsGine gives each recipient. A key
with code ``*`` matches any code of that status; a status in no row falls to the generic HTTP
rules (429 and 5xx retried, other 4xx failed).
"""

from __future__ import annotations

from msgine.server.carriers._upstream import Rule

#: (HTTP status, error code) -> what happens to every recipient of the request.
REQUEST_ANSWERS: dict[tuple[int, str], Rule] = {
    (400, "invalid_phone_number"): Rule("fail", "invalid_phone_number"),
    (400, "message_empty"): Rule("fail", "message_empty"),
    (400, "message_too_long"): Rule("fail", "message_too_long"),
    (400, "invalid_sender_id"): Rule("fail", "invalid_sender_id"),
    # MsGine has no route to this destination: another carrier may.
    (400, "no_route"): Rule("failover", "no_route"),
    (400, "*"): Rule("fail", "carrier_rejected"),
    # Our key is wrong, revoked or lacks a scope, or this address is not allowed: nothing this
    # carrier can send now; the route's next carrier takes over.
    (401, "*"): Rule("failover", "upstream_unauthorized"),
    (403, "*"): Rule("failover", "upstream_forbidden"),
    # The idempotency key was used with another body: a message went out under it already.
    (409, "idempotency_conflict"): Rule("fail", "idempotency_conflict"),
    (413, "*"): Rule("fail", "message_too_long"),
    (429, "*"): Rule("retry", "throttled"),
    (500, "*"): Rule("retry", "upstream_error"),
    (502, "*"): Rule("retry", "upstream_error"),
    (503, "*"): Rule("retry", "upstream_error"),
    (504, "*"): Rule("retry", "upstream_error"),
}

#: (recipient status, errorCode) in a 200/201 answer -> that recipient's outcome.
RECIPIENT_ANSWERS: dict[tuple[str, str], Rule] = {
    ("pending", "*"): Rule("accepted"),
    ("queued", "*"): Rule("accepted"),
    ("scheduled", "*"): Rule("accepted"),
    ("sent", "*"): Rule("accepted"),
    ("delivered", "*"): Rule("accepted"),
    ("rejected", "recipient_opted_out"): Rule("fail", "recipient_opted_out", opted_out=True),
    ("rejected", "consent_required"): Rule("fail", "consent_required"),
    ("rejected", "*"): Rule("fail", "carrier_rejected"),
    ("failed", "*"): Rule("fail", "carrier_rejected"),
}

#: MsGine webhook event -> our receipt state (``message.received`` is an inbound message).
RECEIPT_STATES: dict[str, str] = {
    "message.sent": "sent",
    "message.delivered": "delivered",
    "message.failed": "failed",
}
