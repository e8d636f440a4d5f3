"""The Procfile under honcho: `web` serves on the port honcho assigns and stops cleanly;
`release` migrates, and fails the release when it cannot."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.deploy_files import PROCFILE
from tests.support.processes import (
    LoggedProcess,
    all_pids,
    cmdline,
    descendants,
    group_processes,
    http_status,
)
from tests.support.state import applied_versions
from tests.support.urls import PROJECT_ROOT, parse_database_url

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent
HONCHO = VENV_BIN / "honcho"


class Honcho(LoggedProcess):
    """`honcho start ...` on the project's Procfile, in its own session, output in a file."""

    name = "honcho"

    def __init__(self, *args: str, database_url: str, tmp_path: Path) -> None:
        env = dict(os.environ)
        # `python` in the Procfile must be this virtualenv's, as an activated venv would give.
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["DATABASE_URL"] = database_url
        # An empty env file of the test's own: a developer's .env must not change the run.
        env_file = tmp_path / "honcho.env"
        env_file.touch()
        files = ["-f", str(PROCFILE), "-d", str(PROJECT_ROOT), "-e", str(env_file)]
        super().__init__(
            [str(HONCHO), *files, "--no-colour", "start", *args],
            env=env,
            cwd=PROJECT_ROOT,
            log_path=tmp_path / "honcho.log",
        )
        self._seen: dict[int, str] = {}

    def wait(self, timeout: float = 60) -> int:
        try:
            return super().wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError(f"honcho still running after {timeout}s:\n{self.output}") from None

    def process_tree(self) -> dict[int, str]:
        """Honcho and everything under it, pid -> command line."""
        pids = [self.process.pid, *descendants(self.process.pid)]
        tree = {pid: cmdline(pid) for pid in pids}
        self._seen.update(tree)
        return tree

    def close(self) -> None:
        """Whatever happened, leave nothing running and no file open: honcho and its
        descendants, and any process seen under it since orphaned but still running."""
        doomed = {pid for pid, cmd in self._seen.items() if cmd and cmdline(pid) == cmd}
        if self.process.poll() is None:
            doomed |= {self.process.pid, *descendants(self.process.pid)}
        for pid in doomed:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(5)
        self._log.close()


def process_groups(pids: list[int]) -> set[int]:
    groups = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    return groups


def survivors(tree: dict[int, str], groups: set[int], port: int) -> list[str]:
    """What is still running of a stopped run: the same pid with the same command line (not a
    reused pid, not a zombie), anything in its process groups, anything serving its port."""
    left = {pid: cmd for pid, cmd in tree.items() if cmd and cmdline(pid) == cmd}
    for group in groups:
        left.update({pid: cmdline(pid) for pid in group_processes(group)})
    left.update({pid: cmdline(pid) for pid in all_pids() if f"--port {port} " in cmdline(pid)})
    return [f"{pid}: {cmd}" for pid, cmd in sorted(left.items())]


def stop_and_check(
    honcho: Honcho, port: int, deliver: Callable[[], None], expected_status: int
) -> None:
    """Deliver the signal; honcho must exit with expected_status after a graceful shutdown,
    leaving no process of the run behind."""
    tree = honcho.process_tree()
    groups = process_groups(list(tree))
    assert any("uvicorn" in cmd for cmd in tree.values()), tree
    deliver()
    assert honcho.wait(timeout=15) == expected_status, honcho.output
    # Once honcho is gone, nothing of the run may be: allow a moment for the kernel to reap.
    deadline = time.monotonic() + 2
    while (left := survivors(tree, groups, port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], honcho.output
    assert http_status(port) is None
    output = honcho.output
    assert "Finished server process" in output  # uvicorn's graceful shutdown ran
    assert "SIGKILL" not in output  # honcho never had to force anything


@pytest.fixture
def sqlite_file_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


def test_web_serves_on_honchos_port_and_sigterm_leaves_nothing(
    sqlite_file_url: str, port: int, tmp_path: Path
) -> None:
    """`honcho start web` serves /healthz on PORT; SIGTERM to honcho: it exits, nothing left."""
    honcho = Honcho("-p", str(port), "web", database_url=sqlite_file_url, tmp_path=tmp_path)
    try:
        assert honcho.wait_http(port) == 200
        assert http_status(port, "/readyz") == 200
        # On every interface, as platforms route to the container's or dyno's address.
        tree = honcho.process_tree().values()
        serving = f"uvicorn_main service.main:app --host 0.0.0.0 --port {port} "
        assert any(serving in command for command in tree)
        stop_and_check(
            honcho, port, lambda: honcho.process.send_signal(signal.SIGTERM), 128 + signal.SIGTERM
        )
    finally:
        honcho.close()


def test_web_stops_cleanly_on_ctrl_c(sqlite_file_url: str, port: int, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to honcho's foreground process group): honcho exits, nothing left."""
    honcho = Honcho("-p", str(port), "web", database_url=sqlite_file_url, tmp_path=tmp_path)
    try:
        assert honcho.wait_http(port) == 200
        # A terminal's Ctrl-C signals the whole foreground group, not just honcho's pid.
        stop_and_check(
            honcho, port, lambda: os.killpg(honcho.process.pid, signal.SIGINT), 128 + signal.SIGINT
        )
    finally:
        honcho.close()


def test_release_migrates_to_head(sqlite_file_url: str, tmp_path: Path) -> None:
    """`honcho start release` runs the migration and exits 0 with the database at head."""
    honcho = Honcho("release", database_url=sqlite_file_url, tmp_path=tmp_path)
    assert honcho.wait() == 0, honcho.output
    assert applied_versions(parse_database_url(sqlite_file_url)) != []
    check = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "supervisor.py"), "check"],
        env={**os.environ, "DATABASE_URL": sqlite_file_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr  # `check`: 0 means at head


def test_release_fails_on_a_broken_database_url(tmp_path: Path) -> None:
    """A release with an unusable DATABASE_URL exits non-zero (78), so the deploy stops."""
    honcho = Honcho("release", database_url="mysql://app@db.invalid/app", tmp_path=tmp_path)
    assert honcho.wait() == 78, honcho.output
    assert "configuration error" in honcho.output
