"""Compliance: consent, suppression, keywords, quiet hours and sender identification."""
