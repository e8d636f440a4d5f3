"""A full disk and a schema that is behind are named for what they are, on both backends."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import get_settings
from tests.support import postgres
from tests.support.processes import run_alembic
from tests.support.urls import DatabaseURL

DISK_FULL_TRIGGER = (
    "CREATE FUNCTION test_app.disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; "
    "END $$",
    "CREATE TRIGGER disk_full BEFORE INSERT OR UPDATE ON test_app.users "
    "FOR EACH ROW EXECUTE FUNCTION test_app.disk_full()",
)


@pytest.fixture
def unstarted_app(database_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", database_url.url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _service_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("service")]


@pytest.mark.usefixtures("unstarted_app")
def test_schema_not_migrated_is_503_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """An empty schema: 503 'database schema not migrated', one log line, no traceback."""
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        for method, path, body in (
            ("GET", "/users/1", None),
            ("POST", "/users", {"name": "Ada", "email": "ada@example.com"}),
        ):
            caplog.clear()
            response = client.request(method, path, json=body)
            assert response.status_code == 503, response.text
            assert response.json() == {"detail": "database schema not migrated"}
            records = _service_records(caplog)
            assert len(records) == 1, [r.getMessage() for r in records]
            assert "schema not migrated" in records[0].getMessage()
            assert records[0].exc_info is None


def test_full_disk_is_507_and_logged(
    database_url: DatabaseURL, unstarted_app: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Writes on a full disk: 507 'database storage full', each logged once; reads still work."""
    assert run_alembic(database_url, "upgrade", "head").returncode == 0
    if not database_url.is_sqlite:
        postgres.execute(database_url, *DISK_FULL_TRIGGER)
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        if database_url.is_sqlite:
            # The real SQLITE_FULL: the file may not grow by one more page.
            store = client.app.state.store  # type: ignore[attr-defined]
            client.portal.call(store._connection.execute, "PRAGMA max_page_count = 1")
        statuses = []
        for number in range(200):
            caplog.clear()
            response = client.post("/users", json={"name": "x" * 100, "email": f"{number}@a.io"})
            statuses.append(response.status_code)
            if response.status_code == 507:
                break
        assert statuses[-1] == 507, statuses
        assert set(statuses[:-1]) <= {201}
        assert response.json() == {"detail": "database storage full"}
        assert "retry-after" not in response.headers
        records = _service_records(caplog)
        assert len(records) == 1, [r.getMessage() for r in records]
        assert "storage full" in records[0].getMessage()
        assert client.get("/users").status_code == 200
