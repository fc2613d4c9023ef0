"""Limit strings in `limits` notation, validated once and cached.

Parsed items get storage keys that leave out the amount, so changing a limit (say from
"100/minute" to "50/minute") applies to the count already made instead of starting afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from limits import RateLimitItem, parse_many


class _AmountFreeKey:
    """Mixin: the storage key names the window (multiples, granularity), not the amount."""

    namespace: str
    multiples: int
    GRANULARITY: Any

    def key_for(self, *identifiers: str) -> str:
        return "/".join([self.namespace, *identifiers, str(self.multiples), self.GRANULARITY.name])


@lru_cache(maxsize=32)
def _stable_class(base: type[RateLimitItem]) -> type[RateLimitItem]:
    return type(f"Stable{base.__name__}", (_AmountFreeKey, base), {"BASE": base})


def stable(item: RateLimitItem) -> RateLimitItem:
    """The same limit with an amount-free storage key."""
    if isinstance(item, _AmountFreeKey):
        return item
    return _stable_class(type(item))(item.amount, item.multiples, namespace=item.namespace)


def scaled(item: RateLimitItem, divisor: int) -> RateLimitItem:
    """The limit divided by `divisor` (at least 1), same window and key."""
    base = getattr(type(item), "BASE", type(item))
    return _stable_class(base)(
        max(1, item.amount // divisor), item.multiples, namespace=item.namespace
    )


@lru_cache(maxsize=1024)
def _parse_cached(text: str) -> tuple[RateLimitItem, ...]:
    try:
        items = parse_many(text)
    except ValueError:
        raise ValueError(
            f"invalid rate limit {text!r}: expected e.g. '100/minute;20/second'"
        ) from None
    return check_items(items)


def check_items(items: Sequence[RateLimitItem]) -> tuple[RateLimitItem, ...]:
    """Validate a set of limits: not empty, positive amounts, one limit per window."""
    if not items:
        raise ValueError("a rate limit needs at least one 'amount/period' entry")
    windows: set[tuple[int, str]] = set()
    for item in items:
        if item.amount < 1:
            raise ValueError(f"rate limit '{item}' must allow at least 1 request")
        window = (item.multiples, item.GRANULARITY.name)
        if window in windows:
            raise ValueError(f"rate limit has two amounts for the same window '{item}'")
        windows.add(window)
    return tuple(stable(item) for item in items)


def parse_limits(text: str) -> list[RateLimitItem]:
    """Parse and validate a limit string such as "100/minute;20/second".

    Raises ValueError with a message fit for an operator when the string is unusable.
    """
    return list(as_items(text))


def as_items(limits: str | Sequence[RateLimitItem]) -> tuple[RateLimitItem, ...]:
    """Limits from a string (parsed once, then cached) or from already parsed items."""
    if not isinstance(limits, str):
        return check_items(limits)
    if not limits.strip():
        raise ValueError("a rate limit must be a non-empty string such as '100/minute'")
    return _parse_cached(limits.strip())


def _window_seconds(item: RateLimitItem) -> int:
    return int(item.get_expiry())


def exceeded_windows(limits: str, ceiling: str) -> list[str]:
    """The windows of ``ceiling`` that ``limits`` does not keep within, as limit strings.

    A ceiling of A per window W is kept when some limit of B per window V guarantees at most A
    in any W: B * ceil(W / V) <= A (with V >= W that is just B <= A). So ``1/day`` keeps within
    ``10/hour``, ``1/second`` within ``60/minute``, and ``5/minute`` does not keep within
    ``10/hour``. Used where an operator setting or a creating key is a ceiling that accounts
    and keys may only tighten.
    """
    mine = [(item.amount, _window_seconds(item)) for item in as_items(limits)]
    exceeded = []
    for cap in as_items(ceiling):
        window = _window_seconds(cap)
        if not any(amount * -(-window // length) <= cap.amount for amount, length in mine):
            exceeded.append(_notation(cap))
    return exceeded


def _notation(item: RateLimitItem) -> str:
    """``10/hour`` or ``10/5minutes``: the item in the notation it was written in."""
    name = item.GRANULARITY.name
    return (
        f"{item.amount}/{name}" if item.multiples == 1 else f"{item.amount}/{item.multiples}{name}s"
    )
