"""Shared fixtures: real databases (a SQLite file, a throwaway PostgreSQL database)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support import postgres
from tests.support.cluster import PrivateCluster, started_cluster
from tests.support.processes import LoggedProcess, reap_leftovers, run_alembic
from tests.support.project import LAUNCHER_VARIABLES, copy_project, free_port
from tests.support.urls import DatabaseURL, parse_database_url

# Property tests in CI draw the same examples every run (a failure is a bug, never chance);
# on a laptop they keep exploring. A failure found once is pinned with @example.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI", "").lower() == "true":
    settings.load_profile("ci")


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


# Each backend-parametrized test runs on SQLite in the quick run (-m "not slow") and on both in
# the full suite: a throwaway PostgreSQL database per test is most of the quick run's time.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> DatabaseURL:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def migrated_templates(
    postgres_admin: DatabaseURL, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, DatabaseURL]]:
    """One SQLite file and one PostgreSQL database migrated to head once per session: each
    test gets a copy (a file copy; CREATE DATABASE ... TEMPLATE) instead of migrating again."""
    sqlite = parse_database_url(f"sqlite:///{tmp_path_factory.mktemp('template') / 'app.db'}")
    postgres_template = postgres.create_database(postgres_admin)
    try:
        for url in (sqlite, postgres_template):
            result = run_alembic(url, "upgrade", "head")
            assert result.returncode == 0, result.stderr
        yield {"sqlite": sqlite, "postgres": postgres_template}
    finally:
        postgres.drop_database(postgres_admin, postgres_template)


@pytest.fixture(params=BACKENDS)
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseURL]:
    """A database at head for one test, on SQLite and on PostgreSQL, copied from a template."""
    templates: dict[str, DatabaseURL] = request.getfixturevalue("migrated_templates")
    template = templates[request.param]
    if template.is_sqlite:
        copy = tmp_path / "app.db"
        shutil.copy2(template.sqlite_path, copy)
        yield parse_database_url(f"sqlite:///{copy}")
        return
    admin: DatabaseURL = request.getfixturevalue("postgres_admin")
    url = postgres.create_database(admin, template=template.database)
    try:
        yield url
    finally:
        postgres.drop_database(admin, url)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A private copy of the project, so a test can add revision files of its own."""
    return copy_project(tmp_path / "project")


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    """What a test starts ends with it, even when it fails half-way (wider fixtures, set up
    before this one, keep theirs)."""
    before = len(LoggedProcess.started)
    yield
    reap_leftovers(since=before)


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
