"""Leak scanner: finds MsGine API keys and gateway master keys in files and in git history.

Candidates come from :data:`msgine._keyformat.KEY_PATTERN`; the embedded checksum then discards
look-alikes, so a hit is almost certainly a key that some MsGine gateway issued. History is read
with one ``git log -p --text`` per scanned path (added lines only, pre-filtered by git with
``-G``; ``--text`` so files marked ``-diff`` or binary show their lines), which is a single
streaming pass instead of one ``git grep`` per commit. A second pass reads every blob version
once (``git log --raw`` then ``git cat-file --batch``) for what line diffs cannot show: UTF-16
text and committed master keys. Commit and annotated tag messages are scanned too. Git runs with
a scrubbed environment and with pagers, external diff drivers, textconv filters and signature
checks off, so a hostile repository's configuration cannot make the scan run its programs.

Master keys have no checksum, so the rule is narrow (docs/leak-scanning.md): a file named like
the gateway's master key file whose whole content is base64 keys of 32 bytes; any file committed
under a ``msgine-data`` directory (the gateway's data directory); and ``MSGINE_MASTER_KEY=`` set to
such a key in any file or message.

Chosen over ``detect-secrets``: its engine adds nothing to a regex plus checksum, and it does not
read git history (see docs/leak-scanning.md).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from msgine._keyformat import KEY_PATTERN, parse_mode
from msgine._keyformat import redact as redact_key

MAX_FILE_BYTES = 5 * 1024 * 1024
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_COMMIT_MARK = "\x00"  # no diff line can start with NUL, so it cannot be forged by file content
MASTER_KEY_FILE_NAME = "master.key"
DATA_DIR_NAME = "msgine-data"
_MASTER_KEY_BYTES = 32
_MASTER_KEY_VAR = re.compile(
    r"MSGINE_MASTER_KEY\s*[=:]\s*[\"']?([A-Za-z0-9+/=,\s]{40,}?)[\"']?\s*$", re.MULTILINE
)
_UTF16 = (
    ("utf-16-le", b"\xff\xfe", "msgine_".encode("utf-16-le"), "MSGINE_".encode("utf-16-le")),
    ("utf-16-be", b"\xfe\xff", "msgine_".encode("utf-16-be"), "MSGINE_".encode("utf-16-be")),
)
Kind = Literal["api_key", "master_key", "gateway_data"]
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
    #: ``live``/``test`` for API keys; None for master keys and gateway data.
    mode: Literal["live", "test"] | None
    redacted: str
    #: The full key, kept only so a caller can hash it (``--revoke``); never printed or serialised.
    #: Empty for master keys and gateway data (nothing a gateway could revoke).
    key: str = field(repr=False)
    kind: Kind = "api_key"

    @property
    def fails(self) -> bool:
        """Whether this finding fails a scan: a live key, a master key, gateway data."""
        return self.mode == "live" or self.kind != "api_key"

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "commit": self.commit,
            "kind": self.kind,
            "mode": self.mode,
            "redacted": self.redacted,
        }


def format_finding(f: Finding) -> str:
    """One line for humans, e.g. ``app/settings.py:12 (commit 1a2b3c4d5e6f): live key ...``.

    The path is escaped (control and format characters, backslashes): a file name holding a
    newline must not be able to print a forged finding line of its own.
    """
    where = f"{printable(f.path)}:{f.line}"
    if f.commit is not None:
        where += f" (commit {printable(f.commit[:12])})"
    if f.kind == "master_key":
        return f"{where}: master key {f.redacted}"
    if f.kind == "gateway_data":
        return f"{where}: gateway data file {f.redacted}"
    return f"{where}: {f.mode} key {f.redacted}"


def printable(text: str) -> str:
    """``text`` with backslashes, control, format and line/paragraph separator characters
    escaped (``\\n``, ``\\x1b``, ``\\u202e``), so it prints on one line as what it is."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}:
            escaped = ch.encode("unicode_escape", "backslashreplace").decode("ascii")
            out.append(escaped if escaped != ch else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


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
        blob_seen: set[tuple[str, str, str]] = set()
        for raw in paths:
            for finding in _scan_history(os.path.normpath(os.fspath(raw))):
                if finding.line == 0:  # from a blob version: once per path and key
                    what = (finding.kind, finding.key or finding.redacted, finding.path)
                    if what in blob_seen:
                        continue
                    blob_seen.add(what)
                found.setdefault((finding.key, finding.path, finding.line, finding.commit), finding)
    return list(found.values())


def _findings_in_line(text: str, *, path: str, line: int, commit: str | None) -> Iterator[Finding]:
    for match in KEY_PATTERN.finditer(text):
        key = match.group(0)
        mode = parse_mode(key)
        if mode is not None:
            yield Finding(path, line, commit, mode, redact_key(key), key)


def _findings_in_text(text: str, *, path: str, commit: str | None) -> Iterator[Finding]:
    """API keys and ``MSGINE_MASTER_KEY=`` settings in a whole text, with their line numbers."""
    has_key, has_master = "msgine_" in text, "MSGINE_MASTER_KEY" in text
    if not (has_key or has_master):
        return
    for number, line in enumerate(text.split("\n"), start=1):
        if has_key and "msgine_" in line:
            yield from _findings_in_line(line, path=path, line=number, commit=commit)
        if has_master and "MSGINE_MASTER_KEY" in line:
            for match in _MASTER_KEY_VAR.finditer(line):
                if is_master_key_text(match.group(1)):
                    yield _master_key(path, number, commit, "(MSGINE_MASTER_KEY setting)")


def is_master_key_text(text: str) -> bool:
    """Whether ``text`` is nothing but base64 keys of 32 bytes (comma or whitespace separated),
    the form of ``MSGINE_MASTER_KEY`` and of the gateway's master key file."""
    parts = text.replace(",", " ").split()
    if not parts or len(parts) > 16:
        return False
    for part in parts:
        try:
            if len(base64.b64decode(part, validate=True)) != _MASTER_KEY_BYTES:
                return False
        except (binascii.Error, ValueError):
            return False
    return True


def _master_key(path: str, line: int, commit: str | None, what: str) -> Finding:
    return Finding(path, line, commit, None, what, "", "master_key")


def _decoded_texts(data: bytes) -> Iterator[tuple[str, str]]:
    """The texts worth scanning in a file's bytes: UTF-8 (binary content included, where keys
    are ASCII), and UTF-16 in either byte order, with or without a byte order mark."""
    if b"msgine_" in data or b"MSGINE_MASTER_KEY" in data:
        yield "utf-8", data.decode("utf-8", "replace")
    for codec, bom, key_marker, var_marker in _UTF16:
        if data.startswith(bom):
            yield codec, data[len(bom) :].decode(codec, "replace")
            continue
        for marker in (key_marker, var_marker):
            position = data.find(marker)
            if position >= 0:
                yield codec, data[position % 2 :].decode(codec, "replace")
                break


def _findings_in_bytes(data: bytes, *, path: str, commit: str | None) -> Iterator[Finding]:
    for _, text in _decoded_texts(data):
        yield from _findings_in_text(text, path=path, commit=commit)


def _master_key_file(path: str, data: bytes, commit: str | None) -> Finding | None:
    """A committed master key file or data directory file, by the rule in the module docstring."""
    parts = Path(path).parts
    name = parts[-1] if parts else path
    text = data[:4096].decode("utf-8", "replace").lstrip("\ufeff")
    if name in _master_key_names() and len(data) < 4096 and is_master_key_text(text):
        return _master_key(path, 1, commit, "(master key file)")
    if DATA_DIR_NAME in parts[:-1]:
        if name == MASTER_KEY_FILE_NAME:
            return _master_key(path, 1, commit, "(master key file)")
        return Finding(path, 1, commit, None, f"(in {DATA_DIR_NAME}/)", "", "gateway_data")
    return None


def _master_key_names() -> frozenset[str]:
    """``master.key``, and the file MSGINE_MASTER_KEY_FILE names in this environment."""
    names = {MASTER_KEY_FILE_NAME}
    configured = os.environ.get("MSGINE_MASTER_KEY_FILE")
    if configured:
        names.add(os.path.basename(configured))
    return frozenset(names)


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
    # Split on "\n" only, as git does, so line numbers agree with editors and `git blame`.
    yield from _findings_in_bytes(data, path=path, commit=None)
    if os.path.basename(path) in _master_key_names():
        found = _master_key_file(os.path.basename(path), data, None)
        if found is not None and not _git_ignored(path):
            yield Finding(path, 1, None, None, found.redacted, "", found.kind)


def _git_ignored(path: str) -> bool:
    """Whether git ignores ``path`` (a master key where the gateway keeps it, never to be
    committed, is not a leak); False outside a work tree or without git."""
    git = shutil.which("git")
    if git is None:
        return False
    directory, name = os.path.split(os.path.abspath(path))
    # check-ignore refuses literal pathspecs; the name is a plain file name in its directory.
    env = {**_git_env(), "GIT_LITERAL_PATHSPECS": "0"}
    result = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        _git_command(git, directory, "check-ignore", "-q", "--", "./" + name),
        capture_output=True,
        env=env,
        check=False,
    )
    return result.returncode == 0


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
    yield from _scan_added_lines(git, directory, pathspec)
    yield from _scan_blobs(git, directory, pathspec)
    yield from _scan_messages(git, directory, pathspec)
    if pathspec is None:
        yield from _scan_tags(git, directory)


def _scan_added_lines(git: str, directory: str, pathspec: str | None) -> Iterator[Finding]:
    args = [
        "log",
        "--all",
        "--reverse",
        "-p",
        "--text",  # files marked -diff, or that git takes for binary, show their lines too
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
    with _git_stream(git, directory, args) as stdout:
        yield from _parse_log(stdout, directory)


@contextlib.contextmanager
def _git_stream(
    git: str, directory: str, args: Sequence[str], stdin: bytes | None = None
) -> Iterator[IO[bytes]]:
    """git's stdout as a stream; ScanError (with git's first error line) if git fails."""
    command = _git_command(git, directory, *args)
    with tempfile.TemporaryFile() as errors:
        with subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
            command,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=_git_env(),
        ) as process:
            assert process.stdout is not None
            if stdin is not None:
                feeder = threading.Thread(target=_feed, args=(process, stdin), daemon=True)
                feeder.start()
            yield process.stdout
            process.stdout.read()  # drain, so git is not killed by a closed pipe
        if process.returncode != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip().splitlines()
            detail = printable(message[0]) if message else f"exit status {process.returncode}"
            raise ScanError(f"git {args[0]} failed in {printable(directory)}: {detail}")


def _feed(process: subprocess.Popen[bytes], data: bytes) -> None:
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError, OSError):
        process.stdin.write(data)
        process.stdin.close()


def _scan_blobs(git: str, directory: str, pathspec: str | None) -> Iterator[Finding]:
    """Every file version git added, read once: UTF-16 text, master keys, gateway data files.

    ``git log --raw -z`` lists each added or changed file with its blob id (names NUL-ended, so
    any name parses); ``git cat-file --batch`` then streams those blobs. A finding is reported
    at the oldest commit that added that content, at line 0 (a whole file version).
    """
    args = ["log", "--all", "--reverse", "--raw", "--no-abbrev", "-z", "--no-renames"]
    args += ["--diff-filter=AM", "--relative", "--format=%x01%H", "--"]
    if pathspec:
        args.append(pathspec)
    wanted: dict[str, tuple[str, str]] = {}  # blob id -> (commit, path), oldest first
    with _git_stream(git, directory, args) as stdout:
        commit = ""
        tokens = stdout.read().split(b"\x00")
    pending_blob: str | None = None
    for token in tokens:
        text = token.lstrip(b"\n")
        if text.startswith(b"\x01"):
            commit, pending_blob = text[1:].decode("ascii", "replace"), None
        elif text.startswith(b":"):
            fields = text.decode("ascii", "replace").split()
            pending_blob = fields[3] if len(fields) >= 5 and fields[1] != "160000" else None
        elif pending_blob is not None:
            name = os.fsdecode(text)
            wanted.setdefault(pending_blob, (commit, name))
            pending_blob = None
    if not wanted:
        return
    stdin = "".join(f"{blob}\n" for blob in wanted).encode("ascii")
    with _git_stream(git, directory, ["cat-file", "--batch"], stdin=stdin) as stdout:
        for blob, data in _read_batch(stdout):
            commit, name = wanted.get(blob, ("", ""))
            path = os.path.normpath(os.path.join(directory, name))
            found = _master_key_file(name, data, commit)
            if found is not None:
                yield Finding(path, 0, commit, None, found.redacted, "", found.kind)
            for codec, decoded in _decoded_texts(data):
                for finding in _findings_in_text(decoded, path=path, commit=commit):
                    # API keys in UTF-8 come from the line pass, with their line numbers.
                    if codec != "utf-8" or finding.kind != "api_key":
                        yield dataclasses.replace(finding, line=0)


def _read_batch(stdout: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    """(object id, content) of each blob in ``git cat-file --batch`` output."""
    while True:
        header = stdout.readline()
        if not header:
            return
        fields = header.decode("ascii", "replace").split()
        if len(fields) < 3 or fields[1] == "missing":
            continue
        size = int(fields[2])
        data = stdout.read(size)
        stdout.read(1)  # the newline after the content
        if fields[1] == "blob" and size <= MAX_FILE_BYTES:
            yield fields[0], data


def _scan_messages(git: str, directory: str, pathspec: str | None) -> Iterator[Finding]:
    """Keys in commit messages (of the commits touching ``pathspec``, or all)."""
    args = ["log", "--all", "--reverse", "--format=%x00%H%n%B"]
    if pathspec:
        args += ["--", pathspec]
    with _git_stream(git, directory, args) as stdout:
        records = stdout.read().split(b"\x00")
    for record in records:
        commit, _, message = record.decode("utf-8", "replace").partition("\n")
        if commit:
            yield from _findings_in_text(message, path="(commit message)", commit=commit.strip())


def _scan_tags(git: str, directory: str) -> Iterator[Finding]:
    """Keys in annotated tag messages."""
    args = [
        "for-each-ref",
        "refs/tags",
        "--format=%00%(objecttype) %(objectname) %(refname:short)%0a%(contents)",
    ]
    with _git_stream(git, directory, args) as stdout:
        records = stdout.read().split(b"\x00")
    for record in records:
        head, _, message = record.decode("utf-8", "replace").partition("\n")
        kind, _, rest = head.partition(" ")
        tag_id, _, name = rest.partition(" ")
        if kind == "tag":
            yield from _findings_in_text(message, path=f"(tag {name})", commit=tag_id)


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
