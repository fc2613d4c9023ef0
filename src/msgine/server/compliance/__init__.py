"""Compliance: consent, suppression, keywords, quiet hours and sender identification."""

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

__all__ = [
    "ComplianceOverview",
    "ConsentLine",
    "SuppressionLine",
    "compliance_overview",
    "consent_number",
    "remove_suppression",
    "suppressed_number",
    "suppression_ref",
]
