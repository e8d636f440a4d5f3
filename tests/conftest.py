"""Shared fixtures: real databases (a SQLite file, a throwaway PostgreSQL database)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import postgres
from tests.support.cluster import PrivateCluster, started_cluster
from tests.support.project import LAUNCHER_VARIABLES, copy_project, free_port
from tests.support.urls import DatabaseURL, parse_database_url


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


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A private copy of the project, so a test can add revision files of its own."""
    return copy_project(tmp_path / "project")


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings a developer's shell may export must not leak into the tests."""
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")


@pytest.fixture(scope="session")
def private_cluster(postgres_admin: DatabaseURL) -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of the tests' own, with password authentication."""
    with started_cluster(free_port()) as cluster:
        yield cluster
