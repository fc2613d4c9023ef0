"""Compliance: consent, suppression, keywords, quiet hours and sender identification."""

from msgine.server.compliance._consents import grant as grant_consent
from msgine.server.compliance._consents import summary as consent_summary
from msgine.server.compliance._consents import withdraw as withdraw_consent
from msgine.server.compliance._gate import (
    Decision,
    MessageType,
    consent_read,
    evaluate,
    identify,
    suppression_read,
)
from msgine.server.compliance._inbound import Pricing, inbound_handler, store_inbound
from msgine.server.compliance._overview import (
    ComplianceOverview,
    ConsentLine,
    SuppressionLine,
    compliance_overview,
    consent_number,
    remove_suppression,
    suppressed_number,
    suppression_ref,
)
from msgine.server.compliance._policy import change as change_policy
from msgine.server.compliance._policy import read as read_policy
from msgine.server.compliance._privacy import (
    erase_number,
    export_number,
    holds_anything,
    preview_erase,
)
from msgine.server.compliance._retention import background_tasks as retention_tasks
from msgine.server.compliance._retention import preview_purge, run_purge
from msgine.server.compliance._suppressions import OPT_OUT, suppress
from msgine.server.compliance._suppressions import list_page as suppression_page
from msgine.server.compliance._suppressions import remove as unsuppress

__all__ = [
    "OPT_OUT",
    "ComplianceOverview",
    "ConsentLine",
    "Decision",
    "MessageType",
    "Pricing",
    "SuppressionLine",
    "change_policy",
    "compliance_overview",
    "consent_number",
    "consent_read",
    "consent_summary",
    "erase_number",
    "evaluate",
    "export_number",
    "grant_consent",
    "holds_anything",
    "identify",
    "inbound_handler",
    "preview_erase",
    "preview_purge",
    "read_policy",
    "remove_suppression",
    "retention_tasks",
    "run_purge",
    "store_inbound",
    "suppress",
    "suppressed_number",
    "suppression_page",
    "suppression_read",
    "suppression_ref",
    "unsuppress",
    "withdraw_consent",
]
