"""Leak scanner: finds MsGine API keys in files and in the history of git repositories.

Candidates come from :data:`msgine._keyformat.KEY_PATTERN`; the embedded checksum then discards
look-alikes, so a hit is almost certainly a key that some MsGine gateway issued. History is read
with one ``git log -p`` per scanned path (added lines only, pre-filtered by git with ``-G``), which
is a single streaming pass instead of one ``git grep`` per commit. Git runs with a scrubbed
environment and with pagers, external diff drivers, textconv filters and signature checks off, so a
hostile repository's configuration cannot make the scan run its programs.

Chosen over ``detect-secrets``: its engine adds nothing to a regex plus checksum, and it does not
read git history (see docs/leak-scanning.md).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from msgine._keyformat import KEY_PATTERN, parse_mode
from msgine._keyformat import redact as redact_key

MAX_FILE_BYTES = 5 * 1024 * 1024
_BINARY_SNIFF_BYTES = 8192
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_COMMIT_MARK = "\x00"  # no diff line can start with NUL, so it cannot be forged by file content
_GIT_CONFIG = (
    "core.pager=cat",
    "core.quotePath=true",
    "core.fsmonitor=false",
    "log.showSignature=false",
)


class ScanError(Exception):
    """The scan could not be completed (e.g. git failed); never carries file contents."""


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    commit: str | None
    mode: Literal["live", "test"]
    redacted: str
    #: The full key, kept only so a caller can hash it (``--revoke``); never printed or serialised.
    key: str = field(repr=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "commit": self.commit,
            "mode": self.mode,
            "redacted": self.redacted,
        }


def format_finding(f: Finding) -> str:
    """One line for humans, e.g. ``app/settings.py:12 (commit 1a2b3c4d5e6f): live key ...``."""
    where = f"{f.path}:{f.line}"
    if f.commit is not None:
        where += f" (commit {f.commit[:12]})"
    return f"{where}: {f.mode} key {f.redacted}"


def scan_paths(paths: Sequence[str | os.PathLike[str]], *, history: bool = True) -> list[Finding]:
    """Findings in the files under ``paths`` and, with ``history``, in their git history.

    Working-tree findings come first (sorted by path), then history findings oldest commit
    first, each reported at the commit and line where the key was added. Raises
    ``FileNotFoundError`` for a missing path and :class:`ScanError` when git fails.
    """
    found: dict[tuple[str, str, int, str | None], Finding] = {}
    for raw in paths:
        path = os.path.normpath(os.fspath(raw))
        if not os.path.lexists(path):
            raise FileNotFoundError(f"no such file or directory: {path}")
        for finding in _scan_tree(path):
            found.setdefault((finding.key, finding.path, finding.line, None), finding)
    if history:
        for raw in paths:
            for finding in _scan_history(os.path.normpath(os.fspath(raw))):
                found.setdefault((finding.key, finding.path, finding.line, finding.commit), finding)
    return list(found.values())


def _findings_in_line(text: str, *, path: str, line: int, commit: str | None) -> Iterator[Finding]:
    for match in KEY_PATTERN.finditer(text):
        key = match.group(0)
        mode = parse_mode(key)
        if mode is not None:
            yield Finding(path, line, commit, mode, redact_key(key), key)


# --- files -------------------------------------------------------------------------------------


def _scan_tree(path: str) -> Iterator[Finding]:
    if _in_git_dir(path):
        return
    if not os.path.isdir(path):
        yield from _scan_file(path)
        return
    for dirpath, dirnames, filenames in os.walk(path):  # does not follow symlinked directories
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            file_path = os.path.join(dirpath, name)
            if not os.path.islink(file_path):
                yield from _scan_file(file_path)


def _in_git_dir(path: str) -> bool:
    return ".git" in Path(os.path.abspath(path)).parts


def _scan_file(path: str) -> Iterator[Finding]:
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > MAX_FILE_BYTES:
            return
        data = Path(path).read_bytes()
    except OSError:  # unreadable or vanished while scanning: nothing to report from it
        return
    if b"\x00" in data[:_BINARY_SNIFF_BYTES]:
        return
    # Split on "\n" only, as git does, so line numbers agree with editors and `git blame`.
    for number, raw_line in enumerate(data.split(b"\n"), start=1):
        if b"msgine_" in raw_line:
            text = raw_line.decode("utf-8", "replace")
            yield from _findings_in_line(text, path=path, line=number, commit=None)


# --- git history -------------------------------------------------------------------------------


def _git_env() -> dict[str, str]:
    """The caller's environment without GIT_* (hooks set GIT_DIR, GIT_INDEX_FILE...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_PAGER="cat",
        PAGER="cat",
        GIT_TERMINAL_PROMPT="0",
        GIT_LITERAL_PATHSPECS="1",
        GIT_OPTIONAL_LOCKS="0",
    )
    return env


def _git_command(git: str, cwd: str, *args: str) -> list[str]:
    command = [git]
    for setting in _GIT_CONFIG:
        command += ["-c", setting]
    return [*command, "-C", cwd, *args]


def _git_work_tree(git: str, directory: str) -> bool:
    result = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        _git_command(git, directory, "rev-parse", "--is-inside-work-tree"),
        capture_output=True,
        env=_git_env(),
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == b"true"


def _scan_history(path: str) -> Iterator[Finding]:
    directory, pathspec = (path, None) if os.path.isdir(path) else os.path.split(path)
    directory = directory or os.curdir
    if _in_git_dir(path) or not os.path.isdir(directory):
        return
    git = shutil.which("git")
    if git is None:
        if _has_git_ancestor(directory):
            raise ScanError("git is not installed: cannot scan history (use --no-history)")
        return
    if not _git_work_tree(git, directory):
        return
    args = [
        "log",
        "--all",
        "--reverse",
        "-p",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--no-show-signature",
        "--unified=0",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        "--relative",
        "-Gmsgine_",
        "--format=%x00%H",  # _COMMIT_MARK, then the commit id
        "--",
    ]
    if pathspec:
        args.append(pathspec)
    command = _git_command(git, directory, *args)
    with tempfile.TemporaryFile() as errors:
        with subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
            command, stdout=subprocess.PIPE, stderr=errors, env=_git_env()
        ) as process:
            assert process.stdout is not None
            yield from _parse_log(process.stdout, directory)
        if process.returncode != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip().splitlines()
            detail = message[0] if message else f"exit status {process.returncode}"
            raise ScanError(f"git log failed in {directory}: {detail}")


def _has_git_ancestor(directory: str) -> bool:
    start = Path(os.path.abspath(directory))
    return any((candidate / ".git").exists() for candidate in (start, *start.parents))


def _parse_log(stream: Iterable[bytes], directory: str) -> Iterator[Finding]:
    """Added lines of ``git log -p --unified=0`` output, with their commit, file and line."""
    commit: str | None = None
    file_path: str | None = None
    in_header = False
    next_line = 0
    for raw in stream:
        line = raw.rstrip(b"\n").decode("utf-8", "replace")
        if line.startswith(_COMMIT_MARK):
            commit, file_path, in_header = line[1:].strip(), None, False
        elif line.startswith("diff --git "):
            file_path, in_header = None, True
        elif in_header:
            if line.startswith("+++ "):
                file_path = _diff_path(line[4:], directory)
            elif hunk := _HUNK.match(line):
                next_line, in_header = int(hunk.group(1)), False
        elif line.startswith("@@"):
            if hunk := _HUNK.match(line):
                next_line = int(hunk.group(1))
        elif line.startswith("+"):
            if file_path is not None and "msgine_" in line:
                yield from _findings_in_line(
                    line[1:], path=file_path, line=next_line, commit=commit
                )
            next_line += 1


def _diff_path(spec: str, directory: str) -> str | None:
    # Git ends the name with a tab when it contains a space; a name's own tabs would be quoted.
    spec = spec.removesuffix("\t")
    if spec == "/dev/null":
        return None
    if spec.startswith('"') and spec.endswith('"'):
        # C-style quoting with octal escapes for non-ASCII bytes (core.quotePath=true).
        escaped = spec[1:-1].encode("ascii", "replace").decode("unicode_escape")
        spec = escaped.encode("latin-1").decode("utf-8", "replace")
    relative = spec.removeprefix("b/")
    return os.path.normpath(os.path.join(directory, relative))
