"""With several workers, none outlives the process the launcher became, however it ended."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.support.processes import (
    Launcher,
    cmdline,
    descendants,
    http_status,
    launcher_env,
    process_stats,
)
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow


def serving_with_two_workers(url: DatabaseURL, port: int, log: Path) -> Launcher:
    env = launcher_env(url)
    launcher = Launcher(["--port", str(port), "--workers", "2"], env=env, log_path=log)
    launcher.wait_http(port)
    # Serving does not mean both workers have started: wait until uvicorn says so twice.
    deadline = time.monotonic() + 60  # two interpreters importing the app on a busy machine
    while launcher.output.count("Application startup complete") < 2:
        assert time.monotonic() < deadline, launcher.output
        time.sleep(0.05)
    return launcher


def worker_processes(pid: int) -> dict[int, str]:
    """The server's spawned workers and multiprocessing's resource tracker, by pid."""
    found = {child: cmdline(child) for child in descendants(pid)}
    return {
        child: command
        for child, command in found.items()
        if "spawn_main" in command or "resource_tracker" in command
    }


def alive(pids: set[int]) -> set[int]:
    """Those of pids still running (a zombie waiting for init to reap it has ended)."""
    return {p.pid for p in process_stats() if p.pid in pids and p.state != "Z"}


def wait_gone(pids: set[int], timeout: float = 5) -> set[int]:
    deadline = time.monotonic() + timeout
    while (left := alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_workers_die_with_a_killed_server(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path
) -> None:
    """SIGKILL of the server: both workers and the resource tracker end, and the port is free."""
    launcher = serving_with_two_workers(sqlite_url, port, tmp_path / "out")
    try:
        workers = worker_processes(launcher.pid)
        assert sum("spawn_main" in command for command in workers.values()) == 2, workers
        assert sum("resource_tracker" in command for command in workers.values()) == 1, workers
        os.kill(launcher.pid, signal.SIGKILL)
        assert launcher.wait(10) == -signal.SIGKILL
        assert wait_gone(set(workers)) == set(), workers
        assert http_status(port) is None
        assert port_is_free(port)
    finally:
        launcher.stop()


def test_sigterm_still_stops_the_workers_gracefully(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path
) -> None:
    """SIGTERM of the server: each worker shuts its app down, then the server exits."""
    launcher = serving_with_two_workers(sqlite_url, port, tmp_path / "out")
    try:
        workers = worker_processes(launcher.pid)
        launcher.process.send_signal(signal.SIGTERM)
        assert launcher.wait(30) in (0, -signal.SIGTERM), launcher.output
        # The resource tracker ends on its own, a moment after the last of them.
        assert wait_gone(set(workers)) == set(), workers
        assert launcher.output.count("Application shutdown complete") == 2, launcher.output
        assert "Stopping parent process" in launcher.output
        assert port_is_free(port)
    finally:
        launcher.stop()
