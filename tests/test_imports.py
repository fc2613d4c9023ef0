"""Every package imports on its own, whichever is imported first.

Packages use one another's exported names, and a few import each other (messages runs
compliance's gate; compliance uses messages' text helpers). A cycle shows only when a particular
package is the first one imported, as a CLI command or a worker process may do, so each package
is imported here first, in a fresh set of ``msgine`` modules.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgine

_CHECK = """
import importlib, sys
from prometheus_client import REGISTRY
failed = []
for name in sys.argv[1:]:
    for collector in list(REGISTRY._collector_to_names):  # metrics are defined again below
        REGISTRY.unregister(collector)
    for loaded in [m for m in sys.modules if m == "msgine" or m.startswith("msgine.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as error:
        failed.append(f"{name}: {type(error).__name__}: {error}")
print("\\n".join(failed))
"""


def _entry_points() -> list[str]:
    """Every package and every public top-level module of the server and the CLI."""
    root = Path(msgine.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if "migrations" in parts or parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            names.append(".".join(parts[:-1]))
        elif not parts[-1].startswith("_") and len(parts) <= 3:
            names.append(".".join(parts))
    return names


def test_each_package_imports_first() -> None:
    names = _entry_points()
    assert "msgine.server.messages" in names and "msgine.server.compliance" in names
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, *names], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
