"""Liveness and readiness."""

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import get_settings
from tests.support.urls import DatabaseURL


def test_healthz_is_200(client: TestClient) -> None:
    """/healthz answers 200 while the process serves."""
    assert client.get("/healthz").status_code == 200


def test_readyz_is_200_at_head(client: TestClient) -> None:
    """/readyz answers 200 when the database answers and the schema is at head."""
    assert client.get("/readyz").json() == {"status": "ok"}


def test_readyz_is_503_before_migrating(
    database_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/readyz answers 503 on a database that was never migrated."""
    monkeypatch.setenv("DATABASE_URL", database_url.url)
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        response = client.get("/readyz")
    get_settings.cache_clear()
    assert response.status_code == 503
