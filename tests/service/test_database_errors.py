"""Database failures while serving are named for what they are, on both backends: each is one
503 (507 for a full disk) naming its cause, one log line, no traceback, no piece of a password.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import get_settings
from tests.support import postgres
from tests.support.cluster import PASSWORD, PrivateCluster
from tests.support.processes import run_alembic
from tests.support.urls import DatabaseURL, parse_database_url

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
            client.portal.call(store._writer.execute, "PRAGMA max_page_count = 1")
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


SLOW_WRITES_TRIGGER = (
    "CREATE FUNCTION test_app.slow_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "PERFORM pg_sleep(3); RETURN NEW; END $$",
    "CREATE TRIGGER slow_write BEFORE INSERT ON test_app.users "
    "FOR EACH ROW EXECUTE FUNCTION test_app.slow_write()",
)
EVERY_ROUTE = (
    ("GET", "/users/1", None),
    ("GET", "/users", None),
    ("POST", "/users", {"name": "Ada", "email": "ada@example.com"}),
    ("PATCH", "/users/1", {"name": "Grace"}),
    ("DELETE", "/users/1", None),
)


def _started(url: DatabaseURL, monkeypatch: pytest.MonkeyPatch, **env: str) -> TestClient:
    monkeypatch.setenv("DATABASE_URL", url.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return TestClient(create_app(), raise_server_exceptions=False)


def _answered_once(
    caplog: pytest.LogCaptureFixture, response: Any, status: int, detail: str
) -> str:
    """The response is `status` with `detail`; the service logged it in one line, and nothing
    logged a traceback. Returns that line."""
    assert (response.status_code, response.json()) == (status, {"detail": detail}), response.text
    records = _service_records(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    return records[0].getMessage()


def test_database_dropped_under_the_app_is_503_naming_it(
    postgres_admin: DatabaseURL,
    postgres_url: DatabaseURL,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database dropped while the app serves: 503 'dropped or missing' on every route."""
    assert run_alembic(postgres_url, "upgrade", "head").returncode == 0
    with _started(postgres_url, monkeypatch) as client:
        assert (
            client.post("/users", json={"name": "Ada", "email": "a@example.com"}).status_code == 201
        )
        postgres.drop_database(postgres_admin, postgres_url)  # FORCE: the pool's sessions end
        for method, path, body in EVERY_ROUTE:
            caplog.clear()
            response = client.request(method, path, json=body)
            line = _answered_once(caplog, response, 503, "database unavailable: dropped or missing")
            assert "3D000" in line, line
    get_settings.cache_clear()


def test_table_dropped_under_the_app_is_503_not_migrated(
    migrated_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The users table dropped while the app serves: 503 'schema not migrated', never a 500."""
    with _started(migrated_url, monkeypatch) as client:
        assert (
            client.post("/users", json={"name": "Ada", "email": "a@example.com"}).status_code == 201
        )
        if migrated_url.is_sqlite:
            with sqlite3.connect(migrated_url.sqlite_path) as connection:
                connection.execute("DROP TABLE users")
        else:
            postgres.execute(migrated_url, "DROP TABLE test_app.users")
        for method, path, body in EVERY_ROUTE:
            caplog.clear()
            response = client.request(method, path, json=body)
            _answered_once(caplog, response, 503, "database schema not migrated")
    get_settings.cache_clear()


def _password_pieces(password: str) -> list[str]:
    return [piece for piece in re.split(r"[/?#@:]", password) if len(piece) >= 3]


@pytest.mark.parametrize(
    ("password", "database", "detail"),
    [
        ("wrong-Zq7Wx9", "postgres", "database unavailable: access denied"),
        (PASSWORD, "no_such_database", "database unavailable: dropped or missing"),
        # Unencoded / ? #: asyncpg reads a port, a query or a fragment out of the password.
        ("Zq7/Wx9-Pa55", "postgres", "database unavailable: misconfigured"),
        ("Zq7?Wx9-Pa55", "postgres", "database unavailable: misconfigured"),
        ("Zq7#Wx9-Pa55", "postgres", "database unavailable: misconfigured"),
    ],
    ids=["wrong-password", "missing-database", "slash", "question-mark", "hash"],
)
def test_connections_refused_are_503_naming_why_without_the_password(
    private_cluster: PrivateCluster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    password: str,
    database: str,
    detail: str,
) -> None:
    """Wrong password, missing database, unreadable URL: 503s naming it, one line each, and no
    piece of the password in any log line or response."""
    url = parse_database_url(
        f"postgresql://postgres:{password}@127.0.0.1:{private_cluster.port}/{database}"
    )
    seen = []
    with _started(url, monkeypatch) as client:
        for method, path, body in EVERY_ROUTE[:3]:
            caplog.clear()
            response = client.request(method, path, json=body)
            _answered_once(caplog, response, 503, detail)
            seen += [caplog.text, response.text]
        ready = client.get("/readyz")
        assert ready.status_code == 503
        seen += [caplog.text, ready.text]
    get_settings.cache_clear()
    leaked = [piece for piece in [*_password_pieces(password), PASSWORD] if piece in "".join(seen)]
    assert not leaked, "".join(seen)


@pytest.mark.parametrize("migrated_url", ["postgres"], indirect=True)  # a server
def test_connection_lost_mid_query_is_503_then_recovers(
    migrated_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The server ends the session during an INSERT: 503 'connection lost'; the next request
    gets a fresh connection."""
    postgres.execute(migrated_url, *SLOW_WRITES_TRIGGER)

    def end_the_service_sessions() -> None:
        time.sleep(1)
        postgres.execute(
            migrated_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name LIKE 'service pid=%' AND state = 'active' "
            "AND datname = current_database()",
        )

    with _started(migrated_url, monkeypatch) as client:
        killer = threading.Thread(target=end_the_service_sessions)
        killer.start()
        caplog.clear()
        response = client.post("/users", json={"name": "Ada", "email": "a@example.com"})
        killer.join()
        _answered_once(caplog, response, 503, "database unavailable: connection lost")
        assert response.headers["retry-after"] == "1"
        assert client.get("/users").status_code == 200
    get_settings.cache_clear()


@pytest.mark.parametrize("migrated_url", ["postgres"], indirect=True)  # a server
def test_a_statement_over_the_timeout_is_503_timed_out(
    migrated_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement that outlasts DATABASE_TIMEOUT: 503 'timed out' within about that time."""
    postgres.execute(migrated_url, *SLOW_WRITES_TRIGGER)
    with _started(migrated_url, monkeypatch, DATABASE_TIMEOUT="0.5") as client:
        caplog.clear()
        started = time.monotonic()
        response = client.post("/users", json={"name": "Ada", "email": "a@example.com"})
        assert time.monotonic() - started < 2.5
        _answered_once(caplog, response, 503, "database unavailable: timed out")
        assert client.get("/users").status_code == 200
    get_settings.cache_clear()
