"""The HTTP API: routes only parse, call the domain and render."""

from msgine.server.api.app import create_app

__all__ = ["create_app"]
