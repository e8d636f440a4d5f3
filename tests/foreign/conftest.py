"""A foreign project per test (built once per template, copied), and its database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.foreign.project import SQLITE_URL, ForeignProject, build
from tests.support.urls import DatabaseURL


@pytest.fixture(scope="session")
def _built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ForeignProject]:
    base = tmp_path_factory.mktemp("foreign-templates")
    return {template: build(base / template, template) for template in ("generic", "async")}


def _copy(built: ForeignProject, root: Path) -> ForeignProject:
    shutil.copytree(built.root, root, ignore=shutil.ignore_patterns("__pycache__"))
    return ForeignProject(root, built.template, list(built.revisions))


@pytest.fixture(params=["generic", "async"])
def template(request: pytest.FixtureRequest) -> str:
    """Alembic's sync and async env.py templates."""
    return str(request.param)


@pytest.fixture
def foreign(_built: dict[str, ForeignProject], template: str, tmp_path: Path) -> ForeignProject:
    """A private copy of the foreign project, from Alembic's `template`."""
    return _copy(_built[template], tmp_path / "foreign")


@pytest.fixture(params=["sqlite", "postgres"])
def foreign_url(request: pytest.FixtureRequest) -> str:
    """DATABASE_URL as the operator gives it: a relative SQLite file, or libpq's URL."""
    if request.param == "sqlite":
        return SQLITE_URL
    url: DatabaseURL = request.getfixturevalue("postgres_url")
    return url.url
