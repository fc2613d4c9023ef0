"""The files in deploy/ and docs/deployment.md: what can be checked without a container engine.

systemd units pass ``systemd-analyze verify`` (where it exists) with no warning, keep their
hardening and a low exposure score; the Dockerfile runs unprivileged and its health check works
against a real gateway; the compose file parses and wires PostgreSQL, Redis, the API and two
workers; and every ``msgine`` command and MSGINE_ setting these files name exists.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from msgine.cli import app
from msgine.server.config import Settings
from support import Gateway, free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = {
    "msgine-api.service": ["serve", "--no-worker"],
    "msgine-worker@.service": ["worker"],
}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "RestrictSUIDSGID": "yes",
    "UMask": "0077",
}
SETTINGS = {f"MSGINE_{name.upper()}" for name in Settings.model_fields}
SDK_SETTINGS = {"MSGINE_API_KEY", "MSGINE_BASE_URL"}


def _directives(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def _command_exists(args: list[str]) -> bool:
    """``msgine ARGS --help`` succeeds: the command and every option named exist."""
    saved = dict(os.environ)  # --data-dir sets MSGINE_DATA_DIR for the process
    try:
        result = CliRunner().invoke(app, [*args, "--help"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return result.exit_code == 0


def _names(text: str) -> set[str]:
    return set(re.findall(r"\bMSGINE_[A-Z0-9_]+", text))


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_units_are_hardened_and_run_commands_that_exist(unit: str) -> None:
    directives = _directives(DEPLOY / "systemd" / unit)
    for key, value in HARDENING.items():
        assert directives.get(key) == [value], key
    assert "@system-service" in directives["SystemCallFilter"]
    assert "/var/lib/msgine" in directives["ReadWritePaths"]
    assert directives["User"] != ["root"]
    [exec_start] = directives["ExecStart"]
    binary, *args = shlex.split(exec_start)
    assert binary.endswith("/msgine") and args == UNITS[unit]
    assert _command_exists(args)
    environment = " ".join(directives["Environment"])
    assert _names(environment) <= SETTINGS
    assert "MSGINE_MASTER_KEY_FILE=%d/master.key" in environment  # a credential, not an env var


def _units_here(tmp_path: Path) -> list[Path]:
    """The units with ExecStart pointing at this environment's msgine (verify checks it)."""
    msgine = Path(sys.executable).with_name("msgine")
    assert msgine.exists()
    units = []
    for name in UNITS:
        text = (
            (DEPLOY / "systemd" / name).read_text().replace("/opt/msgine/bin/msgine", str(msgine))
        )
        target = tmp_path / name.replace("@.", "@1.")  # an instance of the template
        target.write_text(text)
        units.append(target)
    return units


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    return found


def test_units_pass_systemd_analyze_verify_without_a_warning(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    result = subprocess.run(
        [analyze, "verify", "--man=no", *map(str, _units_here(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""  # unknown or misspelt directives only warn


def test_units_have_a_low_exposure_score(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    for unit in _units_here(tmp_path):
        result = subprocess.run(
            [analyze, "security", "--offline=yes", str(unit)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        if "--offline" in result.stderr:
            pytest.skip("this systemd-analyze cannot score unit files offline")
        score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        assert score is not None, result.stdout + result.stderr
        assert float(score.group(1)) <= 2.0, result.stdout


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def _instruction(name: str) -> list[str]:
    return [line[len(name) + 1 :] for line in _dockerfile() if line.startswith(f"{name} ")]


def test_dockerfile_runs_unprivileged_with_data_on_a_volume() -> None:
    [user] = _instruction("USER")[-1:]
    assert user.split(":")[0] not in ("root", "0")
    assert json.loads(_instruction("VOLUME")[0]) == ["/var/lib/msgine"]
    env = " ".join(_instruction("ENV"))
    assert "MSGINE_DATA_DIR=/var/lib/msgine" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    assert _names(env) <= SETTINGS
    assert json.loads(_instruction("ENTRYPOINT")[0]) == ["msgine"]
    assert _command_exists(json.loads(_instruction("CMD")[-1]))
    for line in _instruction("COPY"):
        if not line.startswith("--from"):
            for source in line.split()[:-1]:
                assert (ROOT / source).exists(), source
    assert not re.search(r"\b(curl|wget)\b", " ".join(_dockerfile()))


def _healthcheck() -> list[str]:
    [line] = _instruction("HEALTHCHECK")
    command: list[str] = json.loads(line.split(" CMD ", 1)[1])
    return command


def test_the_health_check_passes_on_a_gateway_and_fails_without_one(gateway: Gateway) -> None:
    python, *args = _healthcheck()
    assert python == "python"
    env = {**gateway.env, "MSGINE_PORT": str(gateway.port)}
    up = subprocess.run([sys.executable, *args], env=env, capture_output=True, timeout=30)
    assert up.returncode == 0, up.stderr
    env["MSGINE_PORT"] = str(free_port())
    down = subprocess.run([sys.executable, *args], env=env, capture_output=True, timeout=30)
    assert down.returncode != 0


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_compose_runs_postgresql_redis_the_api_and_two_workers() -> None:
    services = _compose()["services"]
    assert {"postgres", "redis", "init", "api", "worker"} <= set(services)
    assert services["api"]["command"] == ["serve", "--no-worker"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["init"]["command"] == ["init", "--no-key"]  # nothing secret in its log
    for name in ("init", "api", "worker"):
        service = services[name]
        assert _command_exists(service["command"])
        assert service["read_only"] is True
        assert service["user"].split(":")[0] not in ("root", "0")
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert _names(" ".join(service["environment"])) <= SETTINGS
        assert service["environment"]["MSGINE_DATABASE_URL"].startswith("postgresql://")
        assert service["environment"]["MSGINE_MASTER_KEY_FILE"].startswith("/run/secrets/")
    for name in ("api", "worker"):
        needs = services[name]["depends_on"]
        assert needs["init"]["condition"] == "service_completed_successfully"
        assert needs["postgres"]["condition"] == "service_healthy"
    build = services["api"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert services["api"]["ports"] == ["127.0.0.1:8080:8080"]  # TLS proxy in front


def _documented_commands(text: str) -> list[list[str]]:
    """``msgine ...`` invocations in the page's code blocks, up to a shell operator."""
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            for at, word in enumerate(words):
                as_user = at > 0 and words[at - 1] in {"-u", "--user", "-o", "-g"}
                if (word == "msgine" and not as_user) or word.endswith("/bin/msgine"):
                    args = []
                    for arg in words[at + 1 :]:
                        if arg in {"|", "&&", ";", ">", "||"}:
                            break
                        args.append(arg)
                    if args:
                        commands.append(args)
                    break
    return commands


def test_the_deployment_page_names_only_commands_and_settings_that_exist() -> None:
    text = (ROOT / "docs" / "deployment.md").read_text()
    commands = _documented_commands(text)
    assert len(commands) >= 8
    missing = [args for args in commands if not _command_exists(args)]
    assert missing == []
    assert _names(text) <= SETTINGS | SDK_SETTINGS
    for needed in ("MSGINE_TRUSTED_PROXIES", "MSGINE_MASTER_KEY_FILE", "MSGINE_DATABASE_URL"):
        assert needed in text
    for path in re.findall(r"\bdeploy/[\w./@-]+", text):
        if not path.startswith("deploy/secrets"):  # made by the operator, never committed
            assert (ROOT / path.rstrip(".")).exists(), path


def test_the_compose_secret_is_never_committed() -> None:
    secret = _compose()["secrets"]["msgine_master_key"]["file"]
    path = (DEPLOY / secret).resolve().relative_to(ROOT)
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "--no-index", "-q", str(path)], check=False
    )
    assert ignored.returncode == 0, f"{path} is not in .gitignore"
