"""JSON responses rendered by pydantic-core.

The same compact UTF-8 bytes as Starlette's JSONResponse (non-ASCII text unescaped), rendered
in Rust several times faster; every send returns one, and so does every error.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from starlette.responses import JSONResponse


class JSONBody(JSONResponse):
    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)
