"""Webhook retry schedule: when the next attempt is due after a failed one.

The schedule lists the seconds to wait before each attempt; the first entry is 0 (the first attempt
is immediate). The default grows roughly exponentially and spans about 27.5 hours, so a receiver
that is down for a day still gets its events (MSGINE_WEBHOOK_RETRY_SCHEDULE overrides it).

Jitter: each wait is drawn uniformly from [base, base * (1 + JITTER_FRACTION)]. Jitter spreads
retries so that deliveries that failed together (one receiver outage) do not all come back in the
same second. It only ever lengthens a wait, because shortening it (classic "full jitter",
uniform(0, base)) could turn a 10 hour step into seconds and shrink the whole retry window below
the documented day; with upward jitter the schedule is a guaranteed minimum.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Final

DEFAULT_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER_FRACTION: Final = 0.2
# A receiver's Retry-After may push a retry out, but not park a delivery indefinitely.
MAX_RETRY_AFTER: Final = 24 * 3600.0
MAX_STEP: Final = 7 * 24 * 3600.0
MAX_RETRIES: Final = 50

_default_rng = random.Random()


def parse_schedule(text: str | None) -> tuple[float, ...]:
    """Parse MSGINE_WEBHOOK_RETRY_SCHEDULE: seconds to wait between attempts, comma separated.

    "5,300,1800" means the first attempt immediately, then retries 5 s, 300 s and 1800 s after
    each failure (four attempts in all). Unset or blank gives DEFAULT_SCHEDULE.
    """
    if text is None or not text.strip():
        return DEFAULT_SCHEDULE
    items = [item.strip() for item in text.split(",")]
    if len(items) > MAX_RETRIES:
        raise ValueError(f"retry schedule has more than {MAX_RETRIES} entries")
    steps: list[float] = [0.0]
    for position, item in enumerate(items, start=1):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(
                f"retry schedule entry {position} is not a number of seconds: {item!r}"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"retry schedule entry {position} must be a non-negative number")
        if value > MAX_STEP:
            raise ValueError(f"retry schedule entry {position} exceeds {int(MAX_STEP)} seconds")
        steps.append(value)
    return tuple(steps)


def next_delay(
    schedule: Sequence[float],
    attempts_made: int,
    *,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the next attempt, or None when the schedule is exhausted.

    retry_after (from a 429 or 503) raises the wait to at least that many seconds, capped at
    MAX_RETRY_AFTER; it never adds attempts.
    """
    if attempts_made < 0:
        raise ValueError("attempts_made must not be negative")
    if attempts_made >= len(schedule):
        return None
    base = float(schedule[attempts_made])
    delay = (rng or _default_rng).uniform(base, base * (1 + JITTER_FRACTION))
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay
