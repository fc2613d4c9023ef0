"""SIGKILL under load on SQLite, sized for CI (the larger run: ``bench/crashes.py``); PostgreSQL's
run is in ``test_crashes_postgresql.py``, a module of its own so that the two long runs can go to
different test processes.

The outcome is read from the database: every accepted message stored, one carrier submission
per recipient, none stuck. Restarted processes take back the killed ones' claims at once, so
the run settles without waiting out the 60 s job lease.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crashes import check, crash_run

pytestmark = pytest.mark.slow


def test_sqlite_gateway_killed_twice_under_load_loses_nothing(tmp_path: Path) -> None:
    found, deployment = crash_run(tmp_path, None, kills=2, between=1.5, clients=4)
    assert deployment.kills == 2
    print(found)
    check(found)
