"""The leak scanner finds real MsGine keys in files and git history, and only those."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from msgine._keyformat import checksum, generate_key, redact
from msgine.server.scan import Finding, ScanError, format_finding, scan_paths
from support import git


def commit_file(repo: Path, name: str, content: str, message: str) -> str:
    target = repo / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    return path


def look_alike(key: str) -> str:
    """Same shape as a real key, wrong checksum."""
    body = key[len("msgine_live_") :]
    wrong = "0" if body[-1] != "0" else "1"
    candidate = key[:-1] + wrong
    assert checksum(body[:-6]) != candidate[-6:]
    return candidate


def test_key_removed_from_the_tree_is_found_in_history(repo: Path) -> None:
    key = generate_key("live")
    added = commit_file(repo, "app/settings.py", f"DEBUG = True\nAPI_KEY = '{key}'\n", "add")
    commit_file(repo, "app/settings.py", "DEBUG = True\n", "remove key")

    findings = scan_paths([repo])

    assert len(findings) == 1
    finding = findings[0]
    assert finding.commit == added
    assert finding.path == str(repo / "app" / "settings.py")
    assert finding.line == 2
    assert finding.mode == "live"
    assert finding.redacted == redact(key) == f"msgine_live_...{key[-4:]}"
    assert finding.key == key


def test_output_never_contains_the_full_key(repo: Path) -> None:
    key = generate_key("live")
    commit_file(repo, "config.env", f"MSGINE_API_KEY={key}\n", "add")
    findings = scan_paths([repo])
    assert {f.commit is None for f in findings} == {True, False}
    for finding in findings:
        line = format_finding(finding)
        assert key not in line
        assert key not in json.dumps(finding.to_dict())
        assert key not in repr(finding)
        assert key not in str(finding)
        assert "key" not in finding.to_dict()
        assert finding.redacted in line
    in_history = next(f for f in findings if f.commit)
    assert format_finding(in_history) == (
        f"{repo / 'config.env'}:1 (commit {in_history.commit[:12]}): live key {redact(key)}"
    )


def test_look_alikes_and_short_tokens_are_ignored(tmp_path: Path) -> None:
    real = generate_key("live")
    fake = look_alike(generate_key("live"))
    (tmp_path / "notes.md").write_text(
        f"checksum fails: {fake}\n"
        "too short: msgine_live_abcDEF123\n"
        "prefix only: msgine_test_\n"
        f"real one: {real}\n"
    )
    findings = scan_paths([tmp_path])
    assert [(f.line, f.key) for f in findings] == [(4, real)]


def test_test_key_has_mode_test(tmp_path: Path) -> None:
    key = generate_key("test")
    (tmp_path / "a.txt").write_text(f"x={key}")
    [finding] = scan_paths([tmp_path])
    assert finding.mode == "test"
    assert finding.redacted.startswith("msgine_test_...")
    assert format_finding(finding) == f"{tmp_path / 'a.txt'}:1: test key {redact(key)}"


def test_plain_directory_and_single_file(tmp_path: Path) -> None:
    key = generate_key("live")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "deep.yaml").write_text(f"one: 1\ntwo: 2\nkey: {key} # and {key}\n")
    findings = scan_paths([tmp_path])
    assert [(f.path, f.line) for f in findings] == [(str(nested / "deep.yaml"), 3)]
    only_file = scan_paths([nested / "deep.yaml"], history=False)
    assert [f.line for f in only_file] == [3]


def test_large_and_git_internal_files_are_skipped_binary_files_are_not(tmp_path: Path) -> None:
    key = generate_key("live")
    (tmp_path / "huge.txt").write_bytes(b"a" * (5 * 1024 * 1024) + key.encode())
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "ORIG").write_text(key)
    assert scan_paths([tmp_path], history=False) == []
    # A key is as leaked in a binary file (a database, a .pyc) as in a text file.
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01" + key.encode() + b"\n")
    assert [f.path for f in scan_paths([tmp_path], history=False)] == [str(tmp_path / "blob.bin")]


def test_symlinks_are_not_followed_when_walking(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(generate_key("live"))
    scanned = tmp_path / "scanned"
    scanned.mkdir()
    (scanned / "link-dir").symlink_to(outside, target_is_directory=True)
    (scanned / "link-file").symlink_to(outside / "secret.txt")
    assert scan_paths([scanned]) == []


def test_each_commit_adding_a_key_is_reported_once(repo: Path) -> None:
    key = generate_key("live")
    first = commit_file(repo, "a.py", f"K = '{key}'\n", "add")
    commit_file(repo, "a.py", f"# header\nK = '{key}'\n", "shift it down")
    commit_file(repo, "a.py", "nothing\n", "remove")
    second = commit_file(repo, "b.py", f"\n\nK = '{key}'\n", "add again elsewhere")
    findings = scan_paths([repo, repo, repo / "b.py"])
    assert [(f.path, f.line, f.commit) for f in findings] == [
        (str(repo / "b.py"), 3, None),
        (str(repo / "a.py"), 1, first),
        (str(repo / "b.py"), 3, second),
    ]


def test_history_of_other_branches_and_subdirectory_scope(repo: Path) -> None:
    commit_file(repo, "svc/README", "hello\n", "init")
    main = git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    key = generate_key("live")
    other = generate_key("test")
    on_branch = commit_file(repo, "svc/conf.ini", f"[x]\nkey={key}\n", "branch key")
    commit_file(repo, "top.txt", other, "outside svc")
    git(repo, "checkout", "-q", main)

    found = scan_paths([repo / "svc"])
    assert [(f.path, f.line, f.commit) for f in found] == [
        (str(repo / "svc" / "conf.ini"), 2, on_branch)
    ]
    assert {f.key for f in scan_paths([repo])} == {key, other}


def test_history_only_relative_paths(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_key("live")
    sha = commit_file(repo, "dir/x.txt", f"{key}\n", "add")
    (repo / "dir" / "x.txt").write_text("clean\n")
    monkeypatch.chdir(repo)
    assert [(f.path, f.commit) for f in scan_paths(["."])] == [(os.path.join("dir", "x.txt"), sha)]
    assert [(f.path, f.commit) for f in scan_paths(["dir"])] == [
        (os.path.join("dir", "x.txt"), sha)
    ]


def test_no_history_skips_git(repo: Path) -> None:
    commit_file(repo, "a.txt", generate_key("live") + "\n", "add")
    commit_file(repo, "a.txt", "gone\n", "remove")
    assert scan_paths([repo], history=False) == []


def test_hostile_repository_config_does_not_run_programs(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\ncat\n")
    script.chmod(0o755)
    git(repo, "config", "core.pager", str(script))
    git(repo, "config", "diff.external", str(script))
    git(repo, "config", "diff.evil.textconv", str(script))
    git(repo, "config", "diff.noprefix", "true")
    git(repo, "config", "diff.mnemonicPrefix", "true")
    git(repo, "config", "log.showSignature", "true")
    (repo / ".gitattributes").write_text("* diff=evil\n")
    key = generate_key("live")
    commit_file(repo, "b/my file.txt", f"{key}\n", "add")
    findings = scan_paths([repo])
    assert not marker.exists()
    assert any(f.commit and f.path == str(repo / "b" / "my file.txt") for f in findings)


def test_git_environment_of_a_hook_does_not_redirect_the_scan(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    git(decoy, "init", "-q")
    key = generate_key("live")
    sha = commit_file(repo, "a.txt", f"{key}\n", "add")
    monkeypatch.setenv("GIT_DIR", str(decoy / ".git"))
    assert sha in {f.commit for f in scan_paths([repo])}


def test_empty_repository_and_non_ascii_names(repo: Path) -> None:
    assert scan_paths([repo]) == []
    key = generate_key("live")
    sha = commit_file(repo, "naïve file.txt", f"{key}\n", "add")
    (repo / "naïve file.txt").unlink()
    [finding] = scan_paths([repo])
    assert (finding.path, finding.commit) == (str(repo / "naïve file.txt"), sha)


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_paths([tmp_path / "nope"])


def test_finding_is_frozen_and_scan_error_is_an_exception() -> None:
    key = generate_key("test")
    finding = Finding("p", 1, None, "test", redact(key), key)
    with pytest.raises(AttributeError):
        finding.line = 2  # type: ignore[misc]
    assert issubclass(ScanError, Exception)
