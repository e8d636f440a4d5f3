"""Shared fixtures: real databases (a SQLite file, a throwaway PostgreSQL database)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import postgres
from tests.cluster import PrivateCluster, started_cluster
from tests.urls import PROJECT_ROOT, DatabaseURL, parse_database_url

PROJECT_FILES = ("supervisor.py", "alembic.ini", "launcher", "service", "migrations", "Procfile")


@pytest.fixture(scope="session")
def postgres_admin() -> DatabaseURL:
    return postgres.require_postgres()


@pytest.fixture
def postgres_url(postgres_admin: DatabaseURL) -> Iterator[DatabaseURL]:
    """A fresh, empty PostgreSQL database for one test."""
    url = postgres.create_database(postgres_admin)
    try:
        yield url
    finally:
        postgres.drop_database(postgres_admin, url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> DatabaseURL:
    return parse_database_url(f"sqlite:///{tmp_path / 'app.db'}")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> DatabaseURL:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


def copy_project(root: Path) -> Path:
    """A private copy of the project at `root`, so a test can add revision files of its own."""
    root.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, root / name)
    return root


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A private copy of the project, so a test can add revision files of its own."""
    return copy_project(tmp_path / "project")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings a developer's shell may export must not leak into the tests."""
    for name in (
        "DATABASE_URL",
        "DATABASE_SCHEMA",
        "PORT",
        "HOST",
        "WEB_CONCURRENCY",
        "APP_MODULE",
        "DB_WAIT_TIMEOUT",
        "MIGRATION_TIMEOUT",
        "MIGRATION_LOCK_TIMEOUT",
        "SKIP_MIGRATIONS",
        "LOG_FORMAT",
        "NOTIFY_SOCKET",
        "ALWAYS_MIGRATE",
    ):
        monkeypatch.delenv(name, raising=False)
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")


@pytest.fixture(scope="session")
def private_cluster(postgres_admin: DatabaseURL) -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of the tests' own, with password authentication."""
    with started_cluster(free_port()) as cluster:
        yield cluster
