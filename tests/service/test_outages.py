"""Database outages and races, against the real service started by the real launcher."""

import contextlib
import json
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support import postgres
from tests.support.cluster import PASSWORD, PrivateCluster
from tests.support.fake_servers import HOSTILE, HostileServer
from tests.support.processes import Launcher, http_json, launcher_env
from tests.support.urls import DatabaseURL, parse_database_url

REQUEST_BOUND_SECONDS = 6.0  # the pool and connect timeouts are 5 s


def _timed(port: int, method: str, path: str, body: bytes | None = None):
    started = time.monotonic()
    status, payload = http_json(port, method, path, body)
    return status, payload, time.monotonic() - started


@pytest.mark.slow  # a real launcher (and cluster)
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


@pytest.mark.slow  # a real launcher (and cluster)
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


WRITERS = 6


def _write_until(port: int, stop: threading.Event, tag: str, answers: list) -> None:
    """POST new users until told to stop, recording (status, email, body) of each answer."""
    number = 0
    while not stop.is_set():
        number += 1
        email = f"{tag}-{number}@load.example.com"
        body = json.dumps({"name": tag, "email": email}).encode()
        try:
            status, payload = http_json(port, "POST", "/users", body)
        except OSError as error:  # no HTTP answer at all: recorded, and the test fails on it
            status, payload = 0, repr(error).encode()
        answers.append((status, email, payload))


def _wait_for_a_201(answers: list, since: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(status == 201 for status, _, _ in answers[since:]):
        assert time.monotonic() < deadline, "the service did not recover"
        time.sleep(0.1)


@pytest.mark.slow  # a real launcher and cluster
@pytest.mark.parametrize("mode", ["fast", "immediate", "smart"])
def test_writes_through_a_postgres_stop_are_never_500_and_every_201_is_stored_once(
    private_cluster: PrivateCluster, port: int, tmp_path: Path, mode: str
) -> None:
    """Concurrent creates while the server stops (fast, immediate, smart) and starts again:
    no 500, one log line per 503, no traceback, and every 201 is in the database once."""
    database = f"load_{mode}"
    private_cluster.execute(f"DROP DATABASE IF EXISTS {database}", f"CREATE DATABASE {database}")
    url = private_cluster.url(database)
    launcher = Launcher(["--port", str(port)], env=launcher_env(url), log_path=tmp_path / "out")
    stop = threading.Event()
    answers: list[tuple[int, str, bytes]] = []
    writers = [
        threading.Thread(target=_write_until, args=(port, stop, f"w{i}", answers))
        for i in range(WRITERS)
    ]
    smart_stop = threading.Thread(target=private_cluster.stop, args=("smart",))
    try:
        launcher.wait_http(port)
        for writer in writers:
            writer.start()
        _wait_for_a_201(answers, 0)
        if mode == "smart":
            # The pool's sessions go on and keep the server up; new sessions are refused.
            # Operators (and systemd) follow an unfinished smart stop with a fast one.
            smart_stop.start()
            time.sleep(1.5)
            private_cluster.stop("fast")
            smart_stop.join(60)
        else:
            private_cluster.stop(mode)
        time.sleep(1.5)  # requests meet the stopped server
        stopped_at = len(answers)
        private_cluster.start()
        _wait_for_a_201(answers, stopped_at)
        time.sleep(0.5)
    finally:
        stop.set()
        for writer in writers:
            if writer.is_alive():
                writer.join(30)
        launcher.stop()
        with contextlib.suppress(subprocess.CalledProcessError):  # already running
            private_cluster.start()
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {201, 503}, sorted(set(statuses))
    assert 503 in statuses, "the server stopped, yet no request noticed"
    created = {
        email: json.loads(payload)["id"] for status, email, payload in answers if status == 201
    }
    stored = postgres.fetch(url, "SELECT email, id FROM test_app.users")
    stored_ids = {email: [row_id for e, row_id in stored if e == email] for email in created}
    assert {email: ids for email, ids in stored_ids.items() if ids != [created[email]]} == {}
    output = launcher.output
    assert output.count("database unavailable: ") == statuses.count(503), output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert PASSWORD not in output


@pytest.mark.slow  # a real launcher (and cluster)
def test_wrong_password_with_skip_migrations_is_one_503_line_per_request(
    private_cluster: PrivateCluster, port: int, tmp_path: Path
) -> None:
    """Serving without migrating on a wrong password: 503 'access denied', one log line per
    request, no traceback, no password."""
    url = private_cluster.url(password="wrong-Zq7Wx9")
    launcher = Launcher(
        ["--port", str(port), "--skip-migrations"], env=launcher_env(url), log_path=tmp_path / "o"
    )
    try:
        launcher.wait_http(port)
        for _ in range(3):
            status, payload = http_json(port, "GET", "/users/1")
            assert status == 503, payload
            assert json.loads(payload) == {"detail": "database unavailable: access denied"}
    finally:
        launcher.stop()
    output = launcher.output
    assert output.count("database unavailable: access denied on GET /users/1") == 3, output
    assert "Traceback" not in output
    assert "Zq7Wx9" not in output and PASSWORD not in output


@pytest.mark.slow  # a real launcher
def test_a_server_asking_for_a_costly_hash_freezes_nothing(port: int, tmp_path: Path) -> None:
    """A server demanding 2^31 - 1 rounds of SCRAM hashing: each request is a prompt 503
    'misconfigured' naming the count, /healthz keeps answering, and SIGTERM ends the service
    at once (asyncpg would otherwise hash for minutes on the event loop)."""
    server = HostileServer(HOSTILE["scram_iterations_2147483647"])
    url = parse_database_url(f"postgresql://app:{PASSWORD}@127.0.0.1:{server.port}/app")
    launcher = Launcher(
        ["--port", str(port), "--skip-migrations"], env=launcher_env(url), log_path=tmp_path / "o"
    )
    try:
        launcher.wait_http(port)
        for _ in range(3):
            status, payload, elapsed = _timed(port, "GET", "/users/1")
            assert status == 503, payload
            assert json.loads(payload) == {"detail": "database unavailable: misconfigured"}
            assert elapsed < 1.0
            status, _, elapsed = _timed(port, "GET", "/healthz")
            assert status == 200 and elapsed < 1.0
        launcher.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert launcher.wait(timeout=15) in (0, -signal.SIGTERM), launcher.output
        assert time.monotonic() - signalled < 3.0
    finally:
        launcher.stop()
        server.close()
    output = launcher.output
    assert output.count("2,147,483,647 rounds of SCRAM password hashing") == 3, output
    assert "Traceback" not in output
    assert PASSWORD not in output
