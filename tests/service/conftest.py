from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import get_settings
from tests.support.urls import DatabaseURL


@pytest.fixture
def client(migrated_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app on a migrated database (SQLite and PostgreSQL), lifespan included."""
    monkeypatch.setenv("DATABASE_URL", migrated_url.url)
    get_settings.cache_clear()
    try:
        with TestClient(create_app(), raise_server_exceptions=False) as test_client:
            yield test_client
    finally:
        get_settings.cache_clear()
