"""deploy/Dockerfile: exec-form commands, a non-root user, and an image command and
HEALTHCHECK that work when run for real (here, against this checkout: no Docker needed)."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.deploy_files import (
    APP_ROOT,
    DOCKERIGNORE,
    dockerfile_env,
    dockerfile_instructions,
    dockerfile_values,
    exec_form,
)
from tests.support.processes import Launcher, launcher_env
from tests.support.urls import PROJECT_ROOT, DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

# What the launcher needs at run time: its own code, the app, the migrations and their ini.
RUNTIME_FILES = {"supervisor.py", "alembic.ini", "service", "migrations"}
_GO_DURATION_UNITS = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def go_duration_seconds(value: str) -> float:
    """A Docker (Go) duration such as `30s`, `11m` or `1m30s`, in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value)
    assert "".join(n + u for n, u in parts) == value, f"not a duration: {value}"
    return sum(float(n) * _GO_DURATION_UNITS[u] for n, u in parts)


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """HEALTHCHECK's --options and its exec-form command."""
    [arguments] = dockerfile_values("HEALTHCHECK")
    options, _, command = arguments.partition(" CMD ")
    flags = dict(flag.removeprefix("--").split("=", 1) for flag in options.split())
    return flags, exec_form(command)


def copy_sources() -> list[str]:
    sources = []
    for arguments in dockerfile_values("COPY"):
        *from_context, _destination = arguments.split()
        assert not any(s.startswith("--from") for s in from_context), arguments
        sources += [s.rstrip("/") for s in from_context if not s.startswith("--")]
    return sources


def test_based_on_python_slim_and_installs_the_project_with_pip() -> None:
    """FROM python:3.11-slim; the dependencies exactly as requirements.lock pins them (with
    hashes), then the launcher's distribution and the project itself, without resolving again."""
    instructions = dockerfile_instructions()
    assert instructions[0].keyword == "FROM"
    assert instructions[0].arguments == "python:3.11-slim"
    assert {"requirements.lock", "pyproject.toml", "launcher"} <= set(copy_sources())
    runs = " ".join(dockerfile_values("RUN"))
    assert "pip install --require-hashes --no-deps -r requirements.lock" in runs
    assert "pip install --no-deps /tmp/launcher" in runs
    assert "pip install --no-deps --editable ." in runs


def test_entrypoint_and_cmd_are_exec_form_running_the_launcher() -> None:
    """No shell between the runtime and the launcher: ENTRYPOINT and CMD are JSON arrays."""
    [entrypoint] = dockerfile_values("ENTRYPOINT")
    [cmd] = dockerfile_values("CMD")
    assert exec_form(entrypoint) == ["python", f"{APP_ROOT}/supervisor.py"]
    assert exec_form(cmd) == ["serve"]
    assert dockerfile_values("WORKDIR") == [APP_ROOT]


def test_runs_as_a_numeric_non_root_user() -> None:
    """The last USER is not root, and numeric so that Kubernetes' runAsNonRoot can check it."""
    users = dockerfile_values("USER")
    assert users, "no USER: the container would run as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, users[-1]
    assert group == "" or (group.isdigit() and int(group) != 0), users[-1]


def test_listens_on_all_interfaces_on_the_exposed_port() -> None:
    """ENV HOST=0.0.0.0 (a container is reached from outside) and EXPOSE is the PORT set."""
    env = dockerfile_env()
    assert env["HOST"] == "0.0.0.0"
    assert dockerfile_values("EXPOSE") == [env.get("PORT", "8000")] == ["8000"]
    assert "DATABASE_URL" not in env  # a secret baked into an image is readable by anyone


def test_copies_what_the_launcher_needs_and_the_dockerignore_excludes_the_rest() -> None:
    """The runtime files are copied; .venv, var/, caches and .git are kept out of the context,
    and nothing the Dockerfile copies is excluded."""
    sources = copy_sources()
    assert set(sources) >= RUNTIME_FILES
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for must_exclude in (".venv", "var", ".git", "**/__pycache__", ".pytest_cache"):
        assert must_exclude in patterns
    for source in sources:
        excluded = [p for p in patterns if fnmatch.fnmatch(source, p.removeprefix("**/"))]
        assert excluded == [], f"COPY {source} is excluded by {excluded}"
        assert (PROJECT_ROOT / source).exists(), source


def test_healthcheck_is_exec_form_and_waits_out_a_migration() -> None:
    """HEALTHCHECK asks /healthz with Python (no curl in slim); its start period covers the
    database wait and the migration timeout."""
    flags, command = healthcheck()
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2] and "urllib" in command[2]
    assert go_duration_seconds(flags["start-period"]) > 30 + 600
    assert go_duration_seconds(flags["timeout"]) < go_duration_seconds(flags["interval"])


def run_healthcheck(command: list[str], port: int) -> int:
    env = {**os.environ, "PORT": str(port)}
    result = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30
    )
    return result.returncode


def test_image_command_serves_and_the_healthcheck_sees_it(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path
) -> None:
    """The image's command with the image's ENV serves; the HEALTHCHECK command exits 0
    against it, and non-zero once it has stopped."""
    env = dockerfile_env()
    _python, script = exec_form(dockerfile_values("ENTRYPOINT")[0])
    assert script == f"{APP_ROOT}/supervisor.py"  # here: this checkout's supervisor.py
    _flags, check = healthcheck()
    launcher = Launcher(
        exec_form(dockerfile_values("CMD")[0]),
        env=launcher_env(sqlite_url, HOST=env["HOST"], PORT=str(port)),
        log_path=tmp_path / "out",
    )
    try:
        assert launcher.wait_http(port) == 200
        assert run_healthcheck(check, port) == 0
    finally:
        launcher.stop()
    assert run_healthcheck(check, port) != 0
