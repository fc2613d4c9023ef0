"""``remember_last``: a one-entry cache by identity, for conversions the hot paths repeat.

``functools.lru_cache`` hashes and compares its argument and keeps many entries; here the
repeated argument is the very same object (one request's or one batch's ``now``, rendered in
many columns and fields), so an identity check on the last one is all it takes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_NOTHING = object()


def remember_last(fn: Callable[[T], R]) -> Callable[[T], R]:
    """``fn``, answering again for the argument it saw last without calling ``fn``.

    Only for immutable arguments (a held reference also keeps the id from being reused). The
    pair is swapped as one tuple, so a thread never reads a value with another's result; a
    call that raises caches nothing.
    """
    last: list[tuple[Any, Any]] = [(_NOTHING, None)]

    def remembered(value: T) -> R:
        seen, result = last[0]
        if seen is value:
            return result  # type: ignore[no-any-return]
        result = fn(value)
        last[0] = (value, result)
        return result

    remembered.__doc__ = fn.__doc__
    remembered.__name__ = getattr(fn, "__name__", "remembered")
    return remembered
