"""The sd_notify protocol end to end, with a real AF_UNIX datagram socket as NOTIFY_SOCKET."""

import signal
import socket
import time
import uuid
from pathlib import Path

import pytest

from tests.support.processes import Launcher, launcher_env
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow


class NotifySocket:
    """What systemd listens on: a datagram socket; each message is a list of assignments."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address.replace("@", "\0", 1) if address.startswith("@") else address)
        self.address = address
        self.messages: list[list[str]] = []

    def receive_until(self, key: str, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                message = self.sock.recv(4096).decode().split("\n")
            except TimeoutError:
                break
            self.messages.append(message)
            if key in message:
                return message
        raise AssertionError(f"{key} never arrived; got {self.messages}")

    def statuses(self) -> list[str]:
        return [a[7:] for m in self.messages for a in m if a.startswith("STATUS=")]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: Path):
    address = str(tmp_path / "notify") if request.param == "path" else f"@test-{uuid.uuid4()}"
    sock = NotifySocket(address)
    yield sock
    sock.close()


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ready_only_once_the_port_accepts(
    workers: str, notify_socket: NotifySocket, sqlite_url: DatabaseURL, port: int, tmp_path: Path
) -> None:
    """READY=1 arrives after the STATUS phases in order, and the port accepts at that moment."""
    env = launcher_env(sqlite_url, NOTIFY_SOCKET=notify_socket.address)
    launcher = Launcher(
        ["--port", str(port), "--workers", workers], env=env, log_path=tmp_path / "out"
    )
    try:
        ready = notify_socket.receive_until("READY=1")
        assert _connects(port), "READY=1 came before the port accepted connections"
        assert f"MAINPID={launcher.pid}" in ready
        statuses = notify_socket.statuses()
        expected = ["waiting for the database", "migrating to head", "starting the server"]
        assert [s for s in statuses if s in expected] == expected
        assert statuses[-1].startswith("serving on")
        launcher.process.send_signal(signal.SIGTERM)
        notify_socket.receive_until("STOPPING=1")
    finally:
        launcher.stop()


def test_stopping_when_signalled_during_the_wait(
    notify_socket: NotifySocket, tmp_path: Path
) -> None:
    """A SIGTERM while waiting for the database sends STOPPING=1 and exits 143."""
    from tests.support.project import free_port

    url = DatabaseURL(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/app")
    env = launcher_env(url, NOTIFY_SOCKET=notify_socket.address)
    launcher = Launcher(["--db-wait", "60"], env=env, log_path=tmp_path / "out")
    notify_socket.receive_until("STATUS=waiting for the database")
    launcher.process.send_signal(signal.SIGTERM)
    notify_socket.receive_until("STOPPING=1")
    assert launcher.wait(timeout=20) == 143


def test_no_notify_socket_means_no_watcher(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path
) -> None:
    """Without NOTIFY_SOCKET the launcher forks nothing: uvicorn is its only process."""
    from tests.support.processes import descendants

    launcher = Launcher(
        ["--port", str(port)], env=launcher_env(sqlite_url), log_path=tmp_path / "out"
    )
    try:
        launcher.wait_http(port)
        assert descendants(launcher.pid) == []
    finally:
        launcher.stop()
