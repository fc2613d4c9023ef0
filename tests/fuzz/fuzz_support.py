"""Settings shared by the fuzz tests: a bounded run by default, a longer one on request.

``MSGINE_FUZZ_EXAMPLES`` sets the examples per property (default 150, which keeps the whole
folder under a minute in CI); ``MSGINE_FUZZ_EXAMPLES=20000 pytest tests/fuzz`` is a long run.
Hypothesis shrinks any failure to a minimal input and prints it. No example database is written
(runs stay independent of the machine), unless MSGINE_FUZZ_DATABASE names a directory for one.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

EXAMPLES = int(os.environ.get("MSGINE_FUZZ_EXAMPLES", "150"))
_DATABASE = os.environ.get("MSGINE_FUZZ_DATABASE")

fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=DirectoryBasedExampleDatabase(_DATABASE) if _DATABASE else None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def attempt(
    expected: type[BaseException] | tuple[type[BaseException], ...], fn: Any, *args: Any, **kw: Any
) -> tuple[Any, BaseException | None]:
    """``fn(*args, **kw)`` as (result, None), or (None, the error) when it raised ``expected``;
    any other exception propagates, which is what the fuzz tests look for."""
    try:
        return fn(*args, **kw), None
    except expected as exc:
        return None, exc
