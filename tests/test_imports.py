"""Every package imports on its own, whichever is imported first.

Packages use one another's exported names, and a few import each other (messages runs
compliance's gate; compliance uses messages' text helpers). A cycle shows only when a particular
package is the first one imported, as a CLI command or a worker process may do, so each package
is imported here first, in a fresh set of ``msgine`` modules.
"""

from __future__ import annotations

import ast
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


def _private_reaches(root: Path) -> list[str]:
    """Imports of a package's private module (``_name``) from outside that package."""
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            reached = [t for t in targets if _reaches_private(root, importer, t.split("."))]
            found += [f"{importer}:{node.lineno} imports {reached[0]}"] if reached else []
    return found


def _reaches_private(root: Path, importer: str, parts: list[str]) -> bool:
    """Whether the module ``parts`` names lies in a private module of a package that does
    not hold ``importer``."""
    for depth, part in enumerate(parts):
        module = root.parent.joinpath(*parts[: depth + 1])
        if part.startswith("_") and (module.with_suffix(".py").exists() or module.is_dir()):
            owner = ".".join(parts[:depth])
            return importer != owner and not importer.startswith(owner + ".")
    return False


def test_packages_use_each_others_exported_names_only() -> None:
    """A package's ``_private`` modules are its own: others use what its ``__init__``
    exports."""
    assert _private_reaches(Path(msgine.__file__).parent) == []


def test_the_private_import_check_can_fail(tmp_path: Path) -> None:
    package = tmp_path / "msgine"
    for name in ("server/compliance", "server/api"):
        (package / name).mkdir(parents=True)
        (package / name / "__init__.py").write_text("")
    (package / "server/__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "server/compliance/_gate.py").write_text("X = 1\n")
    modules = {
        "server/compliance/own.py": "from msgine.server.compliance._gate import X",  # its own
        "server/api/a.py": "from msgine.server.compliance import _gate",
        "server/api/b.py": "from msgine.server.compliance._gate import X",
        "server/api/c.py": "import msgine.server.compliance._gate",
    }
    for name, line in modules.items():
        (package / name).write_text(line + "\n")
    assert [line.split(" imports")[0] for line in _private_reaches(package)] == [
        "msgine.server.api.a:1",
        "msgine.server.api.b:1",
        "msgine.server.api.c:1",
    ]
