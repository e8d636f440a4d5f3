"""The project as tests and benchmarks run it: a private copy, a clean environment, free ports."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from tests.support.urls import PROJECT_ROOT

# What a copy needs to run the launcher, the migrations and the service.
PROJECT_FILES = ("supervisor.py", "alembic.ini", "service", "migrations", "Procfile")

# Settings a developer's shell may export: any of them would change what a test checks or what
# a benchmark measures.
LAUNCHER_VARIABLES = (
    "DATABASE_URL",
    "DATABASE_SCHEMA",
    "PORT",
    "HOST",
    "WEB_CONCURRENCY",
    "APP_MODULE",
    "DB_WAIT_TIMEOUT",
    "MIGRATION_TIMEOUT",
    "MIGRATION_LOCK_TIMEOUT",
    "MIGRATION_LINT",
    "SKIP_MIGRATIONS",
    "ALWAYS_MIGRATE",
    "ALEMBIC_CONFIG",
    "LOG_FORMAT",
    "LOG_TIMESTAMPS",
    "MAX_HEADER_BYTES",
    "READY_PATH",
    "NOTIFY_SOCKET",
    "METRICS_ENABLED",
    "METRICS_DIR",
    "PROMETHEUS_MULTIPROC_DIR",
    "ALEMBIC_PRESTART_START_REPORT",
    "JOURNAL_STREAM",
)


def copy_project(root: Path) -> Path:
    """A private copy of the project at `root`, so a caller can add revision files of its own."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, root / name)
    return root


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any launcher setting, plus `extra`."""
    env = {name: value for name, value in os.environ.items() if name not in LAUNCHER_VARIABLES}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
