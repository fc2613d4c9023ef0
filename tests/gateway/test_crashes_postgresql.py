"""SIGKILL of the worker and the API under load on PostgreSQL, sized for CI (the larger run:
``bench/crashes.py``; SQLite's run is in ``test_crashes.py``).

The outcome is read from the database: every accepted message stored, one carrier submission
per recipient, none stuck.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crashes import check, crash_run

pytestmark = pytest.mark.slow


def test_postgresql_worker_and_api_killed_under_load_lose_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    found, deployment = crash_run(tmp_path, postgres_url, kills=2, between=1.5, clients=4)
    assert deployment.kills == 2  # the worker, then the API
    print(found)
    check(found)
