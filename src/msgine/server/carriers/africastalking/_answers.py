"""What Africa's Talking's answers mean: the one table the code and docs/carriers-http.md share.

A send answers 201 with one entry per recipient (``statusCode`` and ``status``); any other HTTP
status concerns the whole request. A status in no row falls to the generic HTTP rules (429 and
5xx retried honouring ``Retry-After``, other 4xx failed). Delivery reports carry a ``status``
and, for Rejected and Failed, a ``failureReason``.
"""

from __future__ import annotations

from msgine.server.carriers._base import ReceiptStatus
from msgine.server.carriers._upstream import Rule

#: (HTTP status, ``*``) -> what happens to every recipient of a request AT did not take.
REQUEST_ANSWERS: dict[tuple[int, str], Rule] = {
    # A malformed request for this provider (a missing field, a sender it refuses): nothing was
    # sent, another carrier may take the message.
    (400, "*"): Rule("failover", "carrier_rejected"),
    # Our username or API key is wrong: nothing this carrier can send until an operator fixes
    # it; the route's next carrier takes over.
    (401, "*"): Rule("failover", "upstream_unauthorized"),
    (403, "*"): Rule("failover", "upstream_forbidden"),
    (429, "*"): Rule("retry", "throttled"),
    (500, "*"): Rule("retry", "upstream_error"),
    (502, "*"): Rule("retry", "upstream_error"),
    (503, "*"): Rule("retry", "upstream_error"),
    (504, "*"): Rule("retry", "upstream_error"),
}

#: (recipient ``statusCode``, ``*``) in a 201 answer -> that recipient's outcome.
RECIPIENT_ANSWERS: dict[tuple[int, str], Rule] = {
    (100, "*"): Rule("accepted"),  # Processed
    (101, "*"): Rule("accepted"),  # Success (sent to the network)
    (102, "*"): Rule("accepted"),  # Queued
    # RiskHold: AT's fraud checks hold this message; another carrier may send it.
    (401, "*"): Rule("failover", "carrier_risk_hold"),
    (402, "*"): Rule("failover", "invalid_sender_id"),  # InvalidSenderId (for this carrier)
    (403, "*"): Rule("fail", "invalid_phone_number"),  # InvalidPhoneNumber
    (404, "*"): Rule("failover", "unsupported_number_type"),  # UnsupportedNumberType
    # InsufficientBalance: our AT account is out of credit; the next carrier, else later.
    (405, "*"): Rule("failover", "carrier_insufficient_balance"),
    # UserInBlacklist: the recipient opted out of our sender at AT.
    (406, "*"): Rule("fail", "recipient_opted_out", opted_out=True),
    (407, "*"): Rule("failover", "no_route"),  # CouldNotRoute
    # DoNotDisturbRejection: the number is on the network's do-not-disturb register (a national
    # list, not an opt-out from us): no carrier may send it this message.
    (409, "*"): Rule("fail", "do_not_disturb"),
    (500, "*"): Rule("retry", "upstream_error"),  # InternalServerError
    (501, "*"): Rule("retry", "upstream_error"),  # GatewayError
    (502, "*"): Rule("failover", "carrier_rejected"),  # RejectedByGateway
}

#: An entry with a status code no row names (a code added after this table).
UNKNOWN_RECIPIENT = Rule("failover", "carrier_rejected")

#: Delivery report ``status`` -> our receipt state (Sent, Submitted and Buffered are on the way).
RECEIPT_STATES: dict[str, ReceiptStatus] = {
    "Sent": "sent",
    "Submitted": "sent",
    "Buffered": "sent",
    "Success": "delivered",
    "Rejected": "failed",
    "Failed": "failed",
    "AbsentSubscriber": "failed",
}

#: Delivery report ``failureReason`` -> (our error code, the recipient opted out).
FAILURE_REASONS: dict[str, tuple[str, bool]] = {
    "InsufficientCredit": ("recipient_insufficient_credit", False),
    "InvalidLinkId": ("invalid_link_id", False),
    "UserIsInactive": ("recipient_inactive", False),
    "UserInBlackList": ("recipient_opted_out", True),
    "UserInBlacklist": ("recipient_opted_out", True),
    "UserAccountSuspended": ("recipient_suspended", False),
    "NotNetworkSubscriber": ("invalid_phone_number", False),
    "NotNetworkSubcriber": ("invalid_phone_number", False),  # as AT's older docs spell it
    "UserNotSubscribedToProduct": ("recipient_not_subscribed", False),
    "UserDoesNotExist": ("invalid_phone_number", False),
    "DeliveryFailure": ("undeliverable", False),
    "AbsentSubscriber": ("recipient_absent", False),
    "DoNotDisturbRejection": ("do_not_disturb", False),
}
#: A failed report with no reason, or one this table does not name.
UNKNOWN_FAILURE = ("undeliverable", False)
