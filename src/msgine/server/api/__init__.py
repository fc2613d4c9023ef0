"""The HTTP API: routes only parse, call the domain and render."""

from msgine.server.api._protocol import connection_protocol
from msgine.server.api.app import create_app

__all__ = ["connection_protocol", "create_app"]
