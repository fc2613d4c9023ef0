"""Bounds for free-form JSON a caller may have stored (consent evidence, and the like).

A stored value is read back, rendered and exported many times after it was accepted once: one
that is too deep for the JSON renderer (pydantic-core stops at a few hundred levels) would make
every later read of its row fail. So depth and size are checked when the value is submitted,
where the caller gets a clear 400 naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from msgine.server.errors import InvalidRequest


def bounded_json(value: Any, *, field: str, max_depth: int, max_bytes: int) -> str:
    """``value`` as compact JSON text, or ``InvalidRequest`` if it nests deeper than
    ``max_depth`` containers or encodes to more than ``max_bytes`` UTF-8 bytes."""
    depth = json_depth(value, stop_after=max_depth)
    if depth > max_depth:
        raise InvalidRequest(
            f"{field} nests deeper than {max_depth} levels.",
            details={"field": field, "maxDepth": max_depth},
        )
    encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if len(encoded.encode()) > max_bytes:
        raise InvalidRequest(
            f"{field} is larger than {max_bytes} bytes.",
            details={"field": field, "maxBytes": max_bytes},
        )
    return encoded


def json_depth(value: Any, *, stop_after: int | None = None) -> int:
    """How many containers deep ``value`` nests (a scalar is 0, ``[]`` is 1). Iterative, so a
    hostile value cannot exhaust the stack; stops counting past ``stop_after``."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if stop_after is not None and deepest > stop_after:
            return deepest
        pending.extend((child, depth + 1) for child in children)
    return deepest
