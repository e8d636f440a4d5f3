"""Database outages and races, against the real service started by the real launcher."""

import contextlib
import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support import postgres
from tests.support.cluster import PASSWORD, PrivateCluster
from tests.support.processes import Launcher, http_json, launcher_env
from tests.support.urls import DatabaseURL

REQUEST_BOUND_SECONDS = 6.0  # the pool and connect timeouts are 5 s


def _timed(port: int, method: str, path: str, body: bytes | None = None):
    started = time.monotonic()
    status, payload = http_json(port, method, path, body)
    return status, payload, time.monotonic() - started


def test_service_survives_a_postgres_outage(
    private_cluster: PrivateCluster, port: int, tmp_path: Path
) -> None:
    """Server stopped: quick JSON 503s and /readyz not ready; server back: recovery, no 500."""
    postgres.execute(
        private_cluster.url(), "DROP DATABASE IF EXISTS outage", "CREATE DATABASE outage"
    )
    url = private_cluster.url("outage")
    launcher = Launcher(["--port", str(port)], env=launcher_env(url), log_path=tmp_path / "out")
    statuses: list[int] = []
    try:
        launcher.wait_http(port)
        status, body, _ = _timed(port, "POST", "/users", b'{"name":"A","email":"a@example.com"}')
        assert status == 201
        user_id = json.loads(body)["id"]

        private_cluster.stop()
        for _ in range(5):
            for method, path in (
                ("GET", f"/users/{user_id}"),
                ("GET", "/users"),
                ("POST", "/users"),
            ):
                body = b'{"name":"B","email":"b@example.com"}' if method == "POST" else None
                status, payload, elapsed = _timed(port, method, path, body)
                statuses.append(status)
                assert status == 503, (status, payload)
                assert json.loads(payload)["detail"].startswith("database unavailable")
                assert PASSWORD.encode() not in payload
                assert elapsed < REQUEST_BOUND_SECONDS
        assert _timed(port, "GET", "/readyz")[0] == 503
        assert _timed(port, "GET", "/healthz")[0] == 200

        private_cluster.start()
        deadline = time.monotonic() + 30
        while True:
            status, _, _ = _timed(port, "GET", f"/users/{user_id}")
            statuses.append(status)
            if status == 200:
                break
            assert time.monotonic() < deadline, "the service did not recover"
            time.sleep(0.2)
        assert _timed(port, "GET", "/readyz")[0] == 200
        for _ in range(20):  # every pooled connection must be healthy again
            statuses.append(_timed(port, "GET", f"/users/{user_id}")[0])
        assert statuses[-20:] == [200] * 20
    finally:
        launcher.stop()
        with contextlib.suppress(subprocess.CalledProcessError):  # already running
            private_cluster.start()
    assert 500 not in statuses
    assert "Traceback" not in launcher.output
    assert PASSWORD not in launcher.output


def test_concurrent_creates_with_one_email(
    database_url: DatabaseURL, port: int, tmp_path: Path
) -> None:
    """Twenty simultaneous creates of the same email: exactly one 201, the rest 409."""
    launcher = Launcher(
        ["--port", str(port)], env=launcher_env(database_url), log_path=tmp_path / "out"
    )
    results: list[int] = []
    barrier = threading.Barrier(20)

    def create() -> None:
        barrier.wait()
        results.append(
            http_json(port, "POST", "/users", b'{"name":"R","email":"r@example.com"}')[0]
        )

    try:
        launcher.wait_http(port)
        threads = [threading.Thread(target=create) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        launcher.stop()
    assert sorted(results) == [201] + [409] * 19


def test_connection_limit_is_503_not_500(
    postgres_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A role at its connection limit gets JSON 503s on every route, never a 500."""
    from fastapi.testclient import TestClient

    from service.main import create_app
    from service.settings import get_settings
    from tests.support.processes import run_alembic

    assert run_alembic(postgres_url, "upgrade", "head").returncode == 0
    role = f"limited_{uuid.uuid4().hex[:8]}"
    postgres.execute(postgres_url, f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
    monkeypatch.setenv("DATABASE_URL", postgres_url.url.replace("://postgres@", f"://{role}@"))
    get_settings.cache_clear()
    try:
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            responses = [
                client.get("/users/1"),
                client.get("/users"),
                client.post("/users", json={"name": "L", "email": "l@example.com"}),
            ]
    finally:
        get_settings.cache_clear()
        postgres.execute(postgres_url, f'DROP ROLE "{role}"')
    assert [r.status_code for r in responses] == [503, 503, 503]
    assert all(r.json()["detail"].startswith("database unavailable") for r in responses)
