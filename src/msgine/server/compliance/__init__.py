"""Compliance: consent, suppression, keywords, quiet hours and sender identification."""

from msgine.server.compliance._suppressions import OPT_OUT, suppress

__all__ = ["OPT_OUT", "suppress"]
