"""Liveness and readiness."""

import re
import socket
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.routers.health import SchemaState, schema_state
from service.settings import get_settings
from tests.support import postgres
from tests.support.processes import Launcher, launcher_env
from tests.support.revisions import HEAD
from tests.support.urls import DatabaseURL

HEADS = ("c1", "c2")  # a code with two heads, c1 on top of b1, c2 on top of b2
KNOWN = {"a", "b1", "c1", "b2", "c2"}


def test_healthz_is_200(client: TestClient) -> None:
    """/healthz answers 200 while the process serves."""
    assert client.get("/healthz").status_code == 200


def test_readyz_is_200_at_head(client: TestClient) -> None:
    """/readyz answers 200 when the database answers and the schema is at head."""
    assert client.get("/readyz").json() == {"status": "ok", "schema": "at head"}


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
    assert response.json() == {"status": "unavailable", "reason": "schema behind"}


@pytest.mark.parametrize(
    "database",
    [set(), {"a"}, {"b1", "b2"}, {"c1"}, {"c1", "b2"}],
    ids=["empty", "base", "one-before-heads", "missing-a-head", "one-head-one-behind"],
)
def test_rule_behind(database: set[str]) -> None:
    """Known versions that are not exactly the heads: migrations pending."""
    assert schema_state(database, HEADS, KNOWN) is SchemaState.BEHIND


def test_rule_at_head() -> None:
    """The database holds exactly the code's heads."""
    assert schema_state({"c2", "c1"}, HEADS, KNOWN) is SchemaState.AT_HEAD


@pytest.mark.parametrize("database", [{"d1"}, {"d1", "d2"}])
def test_rule_ahead(database: set[str]) -> None:
    """Only revisions the code does not know: a newer release migrated the database."""
    assert schema_state(database, HEADS, KNOWN) is SchemaState.AHEAD


@pytest.mark.parametrize("database", [{"c1", "d2"}, {"b1", "d2"}])
def test_rule_diverged(database: set[str]) -> None:
    """Known and unknown revisions mixed: no release is known to fit."""
    assert schema_state(database, HEADS, KNOWN) is SchemaState.DIVERGED


def _set_versions(url: DatabaseURL, *versions: str) -> None:
    statements = ["DELETE FROM alembic_version"] + [
        f"INSERT INTO alembic_version (version_num) VALUES ('{v}')" for v in versions
    ]
    if url.is_sqlite:
        with sqlite3.connect(url.sqlite_path) as connection:
            for statement in statements:
                connection.execute(statement)
    else:
        postgres.execute(url, "SET search_path TO test_app", *statements)


@pytest.mark.parametrize(
    ("versions", "status", "body"),
    [
        ((HEAD,), 200, {"status": "ok", "schema": "at head"}),
        (("f00dcafe",), 200, {"status": "ok", "schema": "ahead"}),
        ((HEAD, "f00dcafe"), 503, {"status": "unavailable", "reason": "schema diverged"}),
        ((), 503, {"status": "unavailable", "reason": "schema behind"}),
    ],
    ids=["at-head", "ahead", "diverged", "behind"],
)
def test_readyz_follows_the_rule(
    client: TestClient,
    migrated_url: DatabaseURL,
    versions: tuple[str, ...],
    status: int,
    body: dict,
) -> None:
    """/readyz: 200 at head or ahead (a rolling deploy), 503 with the reason when not."""
    _set_versions(migrated_url, *versions)
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (status, body)


def test_probes_answer_head_and_405_names_the_allowed_methods(client: TestClient) -> None:
    """HEAD works on both probes (load balancers use it); a 405 lists what is allowed."""
    assert client.head("/healthz").status_code == 200
    assert client.head("/readyz").status_code == 200
    response = client.put("/users/1")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "PATCH", "DELETE"}
    assert client.post("/healthz").headers["allow"] == "GET, HEAD"


def test_root_is_200_without_the_database(client: TestClient) -> None:
    """GET and HEAD / answer 200 (the readiness watcher's probe is no 404), naming the docs."""
    response = client.get("/")
    assert response.status_code == 200
    assert response.json()["docs"] == "/docs"
    assert client.head("/").status_code == 200


@pytest.mark.slow  # a real launcher
def test_the_readiness_watchers_probe_is_a_200_in_the_access_log(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path
) -> None:
    """Under systemd (NOTIFY_SOCKET), the launcher's readiness probe logs a 200, never a 404."""
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        notify.settimeout(30)
        env = launcher_env(sqlite_url, NOTIFY_SOCKET=address)
        launcher = Launcher(["--port", str(port)], env=env, log_path=tmp_path / "out")
        try:
            while "READY=1" not in notify.recv(4096).decode().split("\n"):
                pass
        finally:
            launcher.stop()
    assert re.search(r'"GET /\S* HTTP/1.1" 200', launcher.output), launcher.output
    assert " 404" not in launcher.output, launcher.output
