"""Compliance: consent, suppression, keywords, quiet hours and sender identification."""

from msgine.server.compliance._overview import (
    ComplianceOverview,
    ConsentLine,
    compliance_overview,
)

__all__ = ["ComplianceOverview", "ConsentLine", "compliance_overview"]
