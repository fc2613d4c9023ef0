"""Webhooks: endpoints, signed delivery with retries, SSRF guard."""
