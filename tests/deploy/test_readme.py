"""The README's shell commands work as written.

Every line of a ```sh block is run verbatim with `sh -c`, in a copy of the project whose `.venv`
is the virtualenv running these tests (as `.ci/run` creates `.venv` at the project root), with a
throwaway SQLite DATABASE_URL, a free PORT and that venv's bin off PATH (so a recipe that
forgets to activate it fails here as it would on a fresh shell). Two exceptions, each said where
it is decided: the venv creation and `pip install` steps of a chain are left out (they would
rewrite the venv running this test; `.ci/run` runs them on a clean clone), and a pytest command
is only collected (running the suite inside itself would take the suite's time again).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import LoggedProcess, http_status, kill_group
from tests.support.project import clean_environment
from tests.support.state import applied_versions
from tests.support.urls import PROJECT_ROOT, parse_database_url

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

README = PROJECT_ROOT / "README.md"
CI_RUN = PROJECT_ROOT / ".ci" / "run"
VENV = Path(sys.prefix)
# What a clean clone has, and nothing of this checkout's own state (its venv, database, .env).
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "var",
    ".env",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
)
_SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
_INSTALL_STEP = re.compile(r"^python3\.11 -m venv \.venv$|/pip install ")
# Placeholders a reader replaces: nothing answers there.
_PLACEHOLDER = "db.example.com"


def readme_commands() -> list[str]:
    """Each command line of the README's ```sh blocks (continuations joined, comments kept)."""
    commands: list[str] = []
    for block in _SH_BLOCK.findall(README.read_text()):
        pending = ""
        for raw in block.splitlines():
            line = raw.strip()
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = pending + line
            pending = ""
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def words(command: str) -> str:
    """The command as its words, without quotes or a trailing comment, to tell kinds apart."""
    return " ".join(shlex.split(command, comments=True))


def without_install_steps(command: str) -> str:
    """The chain with its venv-creation and pip steps left out (see the module docstring)."""
    steps = [step.strip() for step in command.split(" && ")]
    return " && ".join(step for step in steps if not _INSTALL_STEP.search(step))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project with `.venv` pointing at the venv running this test."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests must run from a virtualenv: the README's commands use .venv")
    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT, root, ignore=NOT_COPIED, symlinks=True)
    (root / ".venv").symlink_to(VENV, target_is_directory=True)
    return root


@pytest.fixture
def shell_env(tmp_path: Path, port: int) -> dict[str, str]:
    venv_bin = str(VENV / "bin")
    env = clean_environment()
    env.pop("VIRTUAL_ENV", None)
    path = [entry for entry in env.get("PATH", "").split(os.pathsep) if entry != venv_bin]
    env["PATH"] = os.pathsep.join(path)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'readme.db'}"
    env["PORT"] = str(port)
    return env


def sh(command: str, *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )


def serve_and_stop(command: str, *, cwd: Path, env: dict[str, str], log: Path) -> str:
    """Start a serving command, see /healthz and /readyz answer 200 on PORT, press Ctrl-C (SIGINT
    to its process group); it must stop and leave the port closed. Returns its output."""
    port = int(env["PORT"])
    server = LoggedProcess(["sh", "-c", command], env=env, cwd=cwd, log_path=log)
    try:
        assert server.wait_http(port, timeout=60) == 200
        assert http_status(port, "/readyz") == 200, server.output
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)
        assert http_status(port) is None, server.output
        return server.output
    finally:
        kill_group(server.pid)
        if server.process.poll() is None:
            server.process.wait(5)


def migrate(cwd: Path, env: dict[str, str]) -> None:
    result = sh(".venv/bin/python supervisor.py migrate", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", readme_commands(), ids=words)
def test_readme_command_runs_as_written(
    command: str, project: Path, shell_env: dict[str, str], tmp_path: Path
) -> None:
    """Each README command does what the README says, run verbatim in a copy of the project."""
    if _PLACEHOLDER in command:
        pytest.skip("a placeholder host and password: nothing answers there")
    runnable = without_install_steps(command)
    said = words(runnable)
    database = parse_database_url(shell_env["DATABASE_URL"])
    if said.endswith("-m pytest"):
        pytest.skip("the whole suite: .ci/run runs this command on a clean clone")
    if said.endswith("-m pytest -m not slow"):
        # Collected, not run; under --strict-markers, an undeclared `slow` fails the collection.
        result = sh(runnable + " --collect-only -q", cwd=project, env=shell_env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    elif said == ".venv/bin/python supervisor.py":
        # The README's first command: no DATABASE_URL, the SQLite default under the root.
        env = {k: v for k, v in shell_env.items() if k != "DATABASE_URL"}
        output = serve_and_stop(runnable, cwd=project, env=env, log=tmp_path / "serve.log")
        assert (project / "var" / "app.db").is_file(), output
        assert "migrations applied: schema at head" in output
    elif said.endswith("honcho start web"):
        migrate(project, shell_env)
        output = serve_and_stop(runnable, cwd=project, env=shell_env, log=tmp_path / "web.log")
        assert f"0.0.0.0:{shell_env['PORT']}" in output
    elif said.endswith(("honcho start release", "supervisor.py migrate")):
        result = sh(runnable, cwd=project, env=shell_env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "migrations applied: schema at head" in result.stdout + result.stderr
        assert applied_versions(database) != []
    elif re.search(r"supervisor\.py (check|status)\b", said):
        pending = sh(runnable, cwd=project, env=shell_env)
        assert pending.returncode == 1, pending.stdout + pending.stderr
        assert "pending" in pending.stdout + pending.stderr
        migrate(project, shell_env)
        at_head = sh(runnable, cwd=project, env=shell_env)
        assert at_head.returncode == 0, at_head.stdout + at_head.stderr
        assert "pending" not in at_head.stdout + at_head.stderr
    else:
        pytest.fail(f"no way to check this README command; teach {__name__}: {command}")


def test_readme_has_the_two_commands_of_a_fresh_machine() -> None:
    """The run command keeps its shape, and the test command is the line `.ci/run` runs."""
    commands = readme_commands()
    run = (
        "python3.11 -m venv .venv && .venv/bin/pip install ./launcher -e . "
        "&& .venv/bin/python supervisor.py"
    )
    assert run in commands
    [ci_test_command] = [
        line for line in CI_RUN.read_text().splitlines() if line.endswith("-m pytest")
    ]
    assert ci_test_command in commands


def test_procfile_recipes_are_the_readmes() -> None:
    """The Procfile's comments give the same local recipes as the README, which the test above
    runs."""
    recipes = [
        line.lstrip("#").strip() for line in (PROJECT_ROOT / "Procfile").read_text().splitlines()
    ]
    for process_type in ("release", "web"):
        recipe = f". .venv/bin/activate && honcho start {process_type}"
        assert recipe in recipes
        assert any(command.startswith(recipe) for command in readme_commands())
