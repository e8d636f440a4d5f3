"""Waiting for the database: retry what may pass, fail fast on what will not."""

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.support.cluster import PASSWORD, PrivateCluster
from tests.support.processes import Launcher, launcher_env
from tests.support.revisions import HEAD
from tests.support.state import applied_versions
from tests.support.urls import DatabaseURL, with_database

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow


class LateProxy:
    """A TCP proxy to PostgreSQL that starts listening only after a delay."""

    def __init__(self, target_port: int, listen_port: int, delay: float) -> None:
        self.target_port = target_port
        self.listen_port = listen_port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(delay,), daemon=True)
        self._thread.start()

    def _serve(self, delay: float) -> None:
        time.sleep(delay)
        with socket.create_server(("127.0.0.1", self.listen_port), reuse_port=False) as server:
            server.settimeout(0.2)
            while not self._stop.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            source.close()  # each socket is the source of exactly one pipe

    def close(self) -> None:
        self._stop.set()


def test_database_that_comes_up_during_the_wait(
    postgres_url: DatabaseURL, port: int, tmp_path: Path
) -> None:
    """The launcher retries a refused connection until the server appears, then migrates."""
    from tests.support.project import free_port

    proxy_port = free_port()
    proxy = LateProxy(5432, proxy_port, delay=3)
    late_url = DatabaseURL(postgres_url.url.replace(":5432/", f":{proxy_port}/"))
    try:
        launcher = Launcher(
            ["migrate", "--db-wait", "30"], env=launcher_env(late_url), log_path=tmp_path / "out"
        )
        assert launcher.wait(timeout=60) == 0, launcher.output
    finally:
        proxy.close()
    assert "waiting for the database" in launcher.output
    assert "connection refused" in launcher.output
    assert applied_versions(postgres_url) == [HEAD]


def test_unreachable_database_exits_69_after_the_wait(tmp_path: Path) -> None:
    """Nothing listening for the whole --db-wait: exit 69 with one clear line."""
    from tests.support.project import free_port

    url = DatabaseURL(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/app")
    started = time.monotonic()
    launcher = Launcher(
        ["migrate", "--db-wait", "2"], env=launcher_env(url), log_path=tmp_path / "out"
    )
    assert launcher.wait(timeout=30) == 69
    assert time.monotonic() - started < 10
    assert "database unreachable" in launcher.output
    assert "Traceback" not in launcher.output


def test_missing_database_fails_fast_with_78(postgres_admin: DatabaseURL, tmp_path: Path) -> None:
    """A database that does not exist is a configuration error: exit 78 at once."""
    url = with_database(postgres_admin, "no_such_database_here")
    started = time.monotonic()
    launcher = Launcher(
        ["migrate", "--db-wait", "30"], env=launcher_env(url), log_path=tmp_path / "out"
    )
    assert launcher.wait(timeout=30) == 78
    assert time.monotonic() - started < 5
    assert 'database "no_such_database_here" does not exist' in launcher.output


def test_wrong_password_fails_fast_with_78(private_cluster: PrivateCluster, tmp_path: Path) -> None:
    """A wrong password is a configuration error: exit 78 at once, the password never shown."""
    url = private_cluster.url(password="wrong-" + PASSWORD)
    started = time.monotonic()
    launcher = Launcher(
        ["migrate", "--db-wait", "30"], env=launcher_env(url), log_path=tmp_path / "out"
    )
    assert launcher.wait(timeout=30) == 78
    assert time.monotonic() - started < 5
    assert (
        'authentication failed: password authentication failed for user "postgres"'
        in launcher.output
    )
    assert PASSWORD not in launcher.output


def test_malformed_url_is_78(tmp_path: Path) -> None:
    """A URL with an unknown scheme or no host is exit 78, one line, no traceback."""
    for raw in ("mysql://u:p@h/db", "postgres:///nohost", "postgresql://h:notaport/db"):
        launcher = Launcher(
            ["migrate"], env={**launcher_env(None), "DATABASE_URL": raw}, log_path=tmp_path / "out"
        )
        assert launcher.wait() == 78, (raw, launcher.output)
        assert "configuration error" in launcher.output
        assert "Traceback" not in launcher.output
