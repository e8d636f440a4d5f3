from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import get_settings
from tests.support.processes import run_alembic
from tests.support.urls import DatabaseURL


@pytest.fixture
def client(database_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app on a migrated database (SQLite and PostgreSQL), lifespan included."""
    result = run_alembic(database_url, "upgrade", "head")
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("DATABASE_URL", database_url.url)
    get_settings.cache_clear()
    try:
        with TestClient(create_app(), raise_server_exceptions=False) as test_client:
            yield test_client
    finally:
        get_settings.cache_clear()
