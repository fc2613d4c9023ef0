"""The larger crash run: many SIGKILLs of real gateway processes under load, on SQLite and
(with --database-url) PostgreSQL, with the outcome read from the database.

The same harness as the CI test (``tests/crashes.py``, sized there to two kills per database):
every accepted message stored, one carrier submission per recipient, none stuck.

    python bench/crashes.py [--kills 20] [--between 3] [--clients 8] [--database-url URL]

The PostgreSQL database must be empty (a fresh one per run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from crashes import check, crash_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--between", type=float, default=3.0, help="seconds of load per kill")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    for url in [None] + ([args.database_url] if args.database_url else []):
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            found, deployment = crash_run(
                Path(tmp),
                url,
                kills=args.kills,
                between=args.between,
                clients=args.clients,
                settle=120,
            )
        name = "PostgreSQL" if url else "SQLite"
        print(f"{name}: {deployment.kills} kills in {time.monotonic() - started:.0f} s: {found}")
        check(found)
    print("all promises held")


if __name__ == "__main__":
    main()
