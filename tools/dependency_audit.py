"""Audit the installed Python dependencies for known vulnerabilities; exit 1 on any finding.

Step 1 is pip-audit with its default PyPI vulnerability service, which asks PyPI's JSON API for
each installed version (``/pypi/NAME/VERSION/json``). Where that per-version document is not
served (pip-audit then skips the dependency with "not found on PyPI" and reports "no known
vulnerabilities" for it), step 2 asks the project document (``/pypi/NAME/json``), whose
``vulnerabilities`` are those of the project's newest release:

* installed version == newest release: its vulnerabilities apply. One with a fixed version
  fails the audit; one with no fix yet is printed as a warning (nothing to upgrade to).
* installed version older than the newest release: this source cannot say whether the
  installed version is affected. That fails the audit too, unless the dependency is listed,
  with the reason it is held back, in ``dependency-audit-exceptions.txt`` beside this file.

Any lookup that fails (network, service) fails the audit: a dependency is never silently
left out. Usage: ``python tools/dependency_audit.py`` in the environment to audit.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PYPI = "https://pypi.org/pypi"
EXCEPTIONS = Path(__file__).with_name("dependency-audit-exceptions.txt")
#: The project itself: installed editable, not a published dependency.
PROJECT = "msgine"


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def pip_audit() -> dict[str, Any]:
    """pip-audit's JSON report of this environment (local packages, the project itself left
    out as it is not published)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--local",
            "--skip-editable",
            "--progress-spinner",
            "off",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):  # 1 means vulnerabilities were found
        raise SystemExit(f"pip-audit failed to run:\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def project_document(name: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{PYPI}/{name}/json", timeout=30) as answer:
        document: dict[str, Any] = json.load(answer)
    return document


def exceptions() -> dict[str, str]:
    held: dict[str, str] = {}
    for line in EXCEPTIONS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, reason = line.partition(" ")
            held[canonical(name)] = reason.strip()
    return held


def audit_skipped(names: list[str]) -> tuple[list[str], list[str], int]:
    """(failures, warnings, audited) for the dependencies pip-audit could not audit."""
    installed = {
        canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
    }
    held = exceptions()
    failures: list[str] = []
    warnings: list[str] = []
    audited = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        documents = dict(zip(names, pool.map(_fetch, names), strict=True))
    for name in names:
        document = documents[name]
        version = installed.get(name, "?")
        if isinstance(document, Exception):
            failures.append(f"{name} {version}: lookup failed ({document!r})")
            continue
        newest = document["info"]["version"]
        if version != newest:
            if name in held:
                warnings.append(f"{name} {version}: not audited (newest {newest}); {held[name]}")
            else:
                failures.append(
                    f"{name} {version}: older than the newest release {newest}, so this source "
                    "cannot audit it; upgrade it, or list it with the reason in "
                    f"{EXCEPTIONS.name}"
                )
            continue
        audited += 1
        for vuln in document.get("vulnerabilities") or []:
            if vuln.get("withdrawn"):
                continue
            line = f"{name} {version}: {vuln['id']} {','.join(vuln.get('aliases') or [])}"
            if vuln.get("fixed_in"):
                failures.append(f"{line} fixed in {', '.join(vuln['fixed_in'])}")
            else:
                warnings.append(f"{line} (no fixed release yet)")
    return failures, warnings, audited


def _fetch(name: str, attempts: int = 3) -> dict[str, Any] | Exception:
    """The project document, retried twice on a passing fault; the last error otherwise."""
    error: Exception = RuntimeError("no attempt")
    for attempt in range(attempts):
        try:
            return project_document(name)
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return exc  # an answer, not a fault: retrying will not change it
            error = exc
        except Exception as exc:
            error = exc
        time.sleep(2**attempt)
    return error


def main() -> int:
    report = pip_audit()
    failures: list[str] = []
    skipped: list[str] = []
    audited = 0
    for dep in report["dependencies"]:
        name = canonical(dep["name"])
        if name == PROJECT:
            continue
        if "skip_reason" in dep:
            skipped.append(name)
            continue
        audited += 1
        for vuln in dep.get("vulns", []):
            if vuln.get("fix_versions"):
                fixes = ", ".join(vuln["fix_versions"])
                failures.append(f"{name} {dep['version']}: {vuln['id']} fixed in {fixes}")
    print(f"pip-audit (per-version PyPI data): audited {audited}, skipped {len(skipped)}")
    warnings: list[str] = []
    if skipped:
        more_failures, warnings, more = audit_skipped(skipped)
        failures += more_failures
        print(f"PyPI project data (newest releases): audited {more} of {len(skipped)} skipped")
    for line in warnings:
        print(f"WARNING {line}")
    for line in failures:
        print(f"FAIL {line}")
    print(f"dependency audit: {len(failures)} failed, {len(warnings)} warnings")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
