"""Compliance: consent, suppression, keywords, quiet hours and sender identification."""

from msgine.server.compliance._gate import (
    Decision,
    MessageType,
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
from msgine.server.compliance._privacy import (
    erase_number,
    export_number,
    holds_anything,
    preview_erase,
)
from msgine.server.compliance._retention import background_tasks as retention_tasks
from msgine.server.compliance._retention import preview_purge, run_purge
from msgine.server.compliance._suppressions import OPT_OUT, suppress

__all__ = [
    "OPT_OUT",
    "ComplianceOverview",
    "ConsentLine",
    "Decision",
    "MessageType",
    "Pricing",
    "SuppressionLine",
    "compliance_overview",
    "consent_number",
    "erase_number",
    "evaluate",
    "export_number",
    "holds_anything",
    "identify",
    "inbound_handler",
    "preview_erase",
    "preview_purge",
    "remove_suppression",
    "retention_tasks",
    "run_purge",
    "store_inbound",
    "suppress",
    "suppressed_number",
    "suppression_read",
    "suppression_ref",
]
