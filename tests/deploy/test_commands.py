"""Every command the deployment files run is a real launcher command, with real options, and
every setting they pass is one the launcher reads."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass

import pytest
from alembic_prestart.cli import main as launcher_cli

from tests.deploy.deploy_files import (
    APP_ROOT,
    ENV_EXAMPLE,
    dockerfile_env,
    dockerfile_values,
    exec_form,
    kubernetes_object,
    pod_containers,
    procfile,
    unit_value,
    unit_values,
)
from tests.support.urls import PROJECT_ROOT

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

# Variables for Python and pip themselves, not for the launcher.
IN_APP_ROOT = f"{APP_ROOT}/supervisor.py"

RUNTIME_VARIABLES = {
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
}


@dataclass(frozen=True)
class DeployCommand:
    where: str
    argv: tuple[str, ...]
    script: str  # how the file names supervisor.py

    def __str__(self) -> str:
        return self.where


def deploy_commands() -> list[DeployCommand]:
    # honcho and Heroku run Procfile lines from the application's root; the others name the
    # script by absolute path, in the directory the image and the unit install the app to.
    commands = [
        DeployCommand(f"Procfile {name}", tuple(shlex.split(line)), "supervisor.py")
        for name, line in procfile().items()
    ]
    image = exec_form(dockerfile_values("ENTRYPOINT")[-1]) + exec_form(dockerfile_values("CMD")[-1])
    commands.append(DeployCommand("Dockerfile ENTRYPOINT+CMD", tuple(image), IN_APP_ROOT))
    for file, kind in (("deployment.yaml", "Deployment"), ("migrate-job.yaml", "Job")):
        for container in pod_containers(kubernetes_object(file, kind)):
            argv = tuple(container.get("command", []) + container.get("args", []))
            commands.append(DeployCommand(f"{file} {container['name']}", argv, IN_APP_ROOT))
    exec_start = tuple(shlex.split(unit_value("ExecStart")))
    commands.append(DeployCommand("supervisor.service ExecStart", exec_start, IN_APP_ROOT))
    return commands


def launcher_subcommands() -> list[str]:
    """The commands `supervisor.py --help` lists."""
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "supervisor.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    listing = result.stdout.split("Commands:", 1)[1]
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


@pytest.mark.parametrize("command", deploy_commands(), ids=str)
def test_command_is_a_real_launcher_command(command: DeployCommand) -> None:
    """The file runs `python supervisor.py <command> [options]`; `<command> --help` exits 0
    and lists every option the file passes."""
    python, script, *arguments = command.argv
    assert python.rsplit("/", 1)[-1] == "python", command.argv
    assert script == command.script, command.argv
    launcher_args = arguments[: arguments.index("--")] if "--" in arguments else arguments
    assert launcher_args, f"{command}: name the command (serve, migrate, check) explicitly"
    subcommand, *options = launcher_args
    assert subcommand in launcher_subcommands(), command.argv
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "supervisor.py"), subcommand, "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: supervisor.py {subcommand} "), result.stdout
    for option in (o.split("=", 1)[0] for o in options if o.startswith("-")):
        listed = re.search(rf"(^|[\s,]){re.escape(option)}\b", result.stdout)
        assert listed, f"{command}: {option} is not an option of `supervisor.py {subcommand}`"


def test_no_command_puts_the_database_url_on_its_command_line() -> None:
    """The password stays out of `ps`: DATABASE_URL comes from the environment everywhere."""
    for command in deploy_commands():
        assert not any(a.startswith("--database-url") for a in command.argv), command
        assert not any("://" in a for a in command.argv), command


def test_procfile_serves_on_all_interfaces_and_releases_by_migrating() -> None:
    """web: serve on 0.0.0.0 at the platform's $PORT (read from the environment, not the line);
    release: the migrate command, whose failure stops a Heroku deploy. Both leave the time
    stamp to the Procfile runner."""
    processes = procfile()
    assert set(processes) == {"web", "release"}
    web = shlex.split(processes["web"])
    assert web[2:] == ["serve", "--host", "0.0.0.0", "--no-log-timestamps"]
    release = shlex.split(processes["release"])
    assert release == ["python", "supervisor.py", "migrate", "--no-log-timestamps"]


def launcher_variables() -> set[str]:
    """The environment variables the launcher's commands read (their click options)."""
    return {
        param.envvar
        for command in launcher_cli.commands.values()
        for param in command.params
        if isinstance(param.envvar, str)
    }


def env_example_names() -> list[str]:
    """Every KEY in env.example, the commented-out examples included."""
    names = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=\S*", line.strip())
        if match:
            names.append(match.group(1))
    return names


def deploy_variables() -> dict[str, list[str]]:
    deployment = pod_containers(kubernetes_object("deployment.yaml", "Deployment"))
    job = pod_containers(kubernetes_object("migrate-job.yaml", "Job"))
    unit_environment = [
        pair.split("=", 1)[0] for value in unit_values("Environment") for pair in value.split()
    ]
    return {
        "Dockerfile ENV": list(dockerfile_env()),
        "deployment.yaml": [e["name"] for c in deployment for e in c.get("env", [])],
        "migrate-job.yaml": [e["name"] for c in job for e in c.get("env", [])],
        "supervisor.service Environment=": unit_environment,
        "env.example": env_example_names(),
    }


def test_every_variable_the_files_set_is_read_by_the_launcher() -> None:
    """No misspelt or invented setting: each variable is a launcher option's or Python's own."""
    known = launcher_variables() | RUNTIME_VARIABLES
    assert "DATABASE_URL" in known  # the introspection works
    for where, names in deploy_variables().items():
        assert names, where
        unknown = sorted(set(names) - known)
        assert unknown == [], f"{where} sets {unknown}, which nothing reads"


def test_env_example_holds_the_url_and_says_it_must_stay_private() -> None:
    """The example sets DATABASE_URL and tells to install it with mode 0600."""
    text = ENV_EXAMPLE.read_text()
    assert re.search(r"^DATABASE_URL=postgres(ql)?://", text, re.MULTILINE)
    assert "0600" in text
