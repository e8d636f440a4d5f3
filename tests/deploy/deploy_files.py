"""Read the deployment files the way their tools do, closely enough to test what they run."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from dataclasses import dataclass

import pytest
import yaml

from tests.support.urls import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
PROCFILE = PROJECT_ROOT / "Procfile"
UNIT = DEPLOY / "supervisor.service"
ENV_EXAMPLE = DEPLOY / "env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
KUBERNETES = DEPLOY / "kubernetes"

# Where the unit and the image put the application (the unit's venv is APP_ROOT/.venv).
APP_ROOT = "/srv/app"


def require_tool(name: str, install_hint: str) -> str:
    """The tool's path; a skip when it is missing, but a failure under CI=true."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed ({install_hint})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true: this test must run", pytrace=False)
        pytest.skip(reason)
    return path


def procfile() -> dict[str, str]:
    """Process type -> command line, as honcho and Heroku read a Procfile."""
    processes = {}
    for line in PROCFILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        processes[name.strip()] = command.strip()
    return processes


def unit_directives(text: str) -> dict[str, list[tuple[str, str]]]:
    """Section -> (key, value) pairs in order; keys may repeat, as systemd allows."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(key: str, section: str = "Service") -> list[str]:
    return [value for name, value in unit_directives(UNIT.read_text())[section] if name == key]


def unit_value(key: str, section: str = "Service") -> str:
    values = unit_values(key, section)
    assert len(values) == 1, f"{key}= appears {len(values)} times in [{section}]"
    return values[0]


_TIMESPAN_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def timespan_seconds(value: str) -> float:
    """A systemd time span such as `15min`, `90s`, `1min 30s` or `600`, in seconds."""
    total = 0.0
    for part in value.split():
        number = part.rstrip("abcdefghijklmnopqrstuvwxyz")
        total += float(number) * _TIMESPAN_UNITS[part[len(number) :] or "s"]
    return total


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_instructions(text: str | None = None) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and parser directives dropped."""
    text = DOCKERFILE.read_text() if text is None else text
    instructions, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return instructions


def dockerfile_values(keyword: str) -> list[str]:
    return [i.arguments for i in dockerfile_instructions() if i.keyword == keyword]


def exec_form(arguments: str) -> list[str]:
    """A JSON exec-form argument list; anything else (shell form) fails the test."""
    try:
        argv = json.loads(arguments)
    except json.JSONDecodeError:
        pytest.fail(f"not exec form (a JSON array): {arguments}")
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv), arguments
    return argv


def dockerfile_env() -> dict[str, str]:
    """ENV key=value pairs, several per instruction allowed."""
    env = {}
    for arguments in dockerfile_values("ENV"):
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def kubernetes_documents(name: str) -> list[dict]:
    with open(KUBERNETES / name) as stream:
        return [document for document in yaml.safe_load_all(stream) if document]


def kubernetes_object(name: str, kind: str) -> dict:
    [found] = [d for d in kubernetes_documents(name) if d["kind"] == kind]
    return found


def pod_containers(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"]["containers"]
