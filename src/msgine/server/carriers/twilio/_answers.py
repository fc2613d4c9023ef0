"""What Twilio's answers mean: the one table the code and docs/carriers-http.md share.

A create answers 201 with the Message resource; an error answers an HTTP status with a JSON
body whose ``code`` is Twilio's error code. Rows are keyed (HTTP status, code); code ``*``
matches any code of the status; a status in no row falls to the generic HTTP rules (429 and
5xx retried honouring ``Retry-After``, other 4xx failed). Status callbacks carry
``MessageStatus`` and, for undelivered and failed, an ``ErrorCode``.
"""

from __future__ import annotations

from msgine.server.carriers._base import ReceiptStatus
from msgine.server.carriers._upstream import Rule

#: (HTTP status, Twilio error code) -> the recipient's outcome.
ANSWERS: dict[tuple[int, str], Rule] = {
    # 20003: our Account SID or token is wrong; nothing this carrier can send until an operator
    # fixes it, so the route's next carrier takes over.
    (401, "*"): Rule("failover", "upstream_unauthorized"),
    (403, "*"): Rule("failover", "upstream_forbidden"),
    (400, "21211"): Rule("fail", "invalid_phone_number"),  # invalid To
    (400, "21614"): Rule("fail", "invalid_phone_number"),  # To is not a mobile number
    (400, "21604"): Rule("fail", "invalid_phone_number"),  # To missing
    (400, "21610"): Rule("fail", "recipient_opted_out", opted_out=True),  # texted STOP
    # The account may not send to this region, or not from this number to that one: another
    # carrier may.
    (400, "21408"): Rule("failover", "no_route"),
    (400, "21612"): Rule("failover", "no_route"),
    # The sender is not one of this account's (21606, 21212) or missing (21603): a carrier
    # configuration matter, another carrier may send it.
    (400, "21606"): Rule("failover", "invalid_sender_id"),
    (400, "21212"): Rule("failover", "invalid_sender_id"),
    (400, "21603"): Rule("failover", "invalid_sender_id"),
    (400, "21602"): Rule("fail", "message_empty"),
    (400, "21617"): Rule("fail", "message_too_long"),
    # Any other 400: this request is not right for Twilio; nothing was sent.
    (400, "*"): Rule("failover", "carrier_rejected"),
    (429, "*"): Rule("retry", "throttled"),  # 20429
    (500, "*"): Rule("retry", "upstream_error"),
    (502, "*"): Rule("retry", "upstream_error"),
    (503, "*"): Rule("retry", "upstream_error"),
    (504, "*"): Rule("retry", "upstream_error"),
}

#: Status callback ``MessageStatus`` -> our receipt state.
RECEIPT_STATES: dict[str, ReceiptStatus] = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}

#: Status callback ``ErrorCode`` -> (our error code, the recipient opted out).
DELIVERY_ERRORS: dict[str, tuple[str, bool]] = {
    "30001": ("carrier_queue_overflow", False),
    "30002": ("carrier_account_suspended", False),
    "30003": ("recipient_unreachable", False),
    "30004": ("message_blocked", False),
    "30005": ("invalid_phone_number", False),
    "30006": ("invalid_phone_number", False),  # a landline or an unreachable carrier
    "30007": ("message_filtered", False),
    "30008": ("undeliverable", False),
    "21610": ("recipient_opted_out", True),  # through a Messaging Service, after STOP
    "21614": ("invalid_phone_number", False),
}
#: A failed callback with no code, or one this table does not name.
UNKNOWN_DELIVERY_ERROR = ("undeliverable", False)
