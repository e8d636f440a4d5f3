"""Run the real launcher (or alembic) as a real process, and look at what it left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tests.support.urls import PROJECT_ROOT, DatabaseURL


def launcher_env(url: DatabaseURL | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if url is not None:
        env["DATABASE_URL"] = url.url
    env.update(extra)
    return env


class LoggedProcess:
    """A command in its own session (and process group), its output collected in a file."""

    name = "process"
    # Every one started and not yet waited for: a test that fails half-way leaves them here,
    # and the suite's fixture ends them (see reap_leftovers) instead of leaking them into the
    # next test as processes and open files.
    started: ClassVar[list[LoggedProcess]] = []

    def __init__(
        self, argv: Sequence[str], *, env: dict[str, str], cwd: Path | str, log_path: Path
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in wait() or by subclasses
        LoggedProcess.started.append(self)
        self.process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def wait_http(self, port: int, path: str = "/healthz", timeout: float = 30) -> int:
        """Poll until the port answers; fail if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited {self.process.returncode} before serving:\n{self.output}"
                )
            status = http_status(port, path)
            if status is not None:
                return status
            time.sleep(0.05)
        raise AssertionError(f"nothing served on port {port} within {timeout}s:\n{self.output}")


class Launcher(LoggedProcess):
    """`python supervisor.py ...` in its own process group, output collected in a file."""

    name = "launcher"

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str],
        root: Path = PROJECT_ROOT,
        cwd: Path | str = "/",
        log_path: Path,
    ) -> None:
        argv = [sys.executable, str(root / "supervisor.py"), *args]
        super().__init__(argv, env=env, cwd=cwd, log_path=log_path)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                kill_group(self.pid)
                self.process.wait(5)
        self._log.close()
        kill_group(self.pid)
        return self.process.returncode


def reap_leftovers(since: int = 0) -> None:
    """Kill and close what was started after the first `since` ones and left running (those
    before belong to wider fixtures, a module's live server say)."""
    while len(LoggedProcess.started) > since:
        leftover = LoggedProcess.started.pop()
        if leftover.process.poll() is None:
            kill_group(leftover.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                leftover.process.wait(5)
        leftover._log.close()


def wait_for_output(process: LoggedProcess, text: str, timeout: float = 30) -> None:
    """Until `text` shows in the process's output; fail if it exits or the time is up."""
    deadline = time.monotonic() + timeout
    while text not in process.output:
        assert process.process.poll() is None, process.output
        assert time.monotonic() < deadline, f"{text!r} never appeared:\n{process.output}"
        time.sleep(0.05)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def http_status(port: int, path: str = "/healthz") -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def http_json(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method=method,
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass(frozen=True)
class ProcessStat:
    pid: int
    state: str
    ppid: int
    pgrp: int


def process_stats() -> Iterator[ProcessStat]:
    """Every process in /proc with its state, parent and process group."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked
        state, ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        yield ProcessStat(int(entry.name), state, int(ppid), int(pgrp))


def group_processes(pgid: int) -> list[int]:
    """Pids still alive in a process group (zombies excluded)."""
    return [p.pid for p in process_stats() if p.pgrp == pgid and p.state != "Z"]


def descendants(pid: int) -> list[int]:
    """Every live descendant of pid."""
    children: dict[int, list[int]] = {}
    for process in process_stats():
        children.setdefault(process.ppid, []).append(process.pid)
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def run_alembic(
    url: DatabaseURL, *args: str, root: Path = PROJECT_ROOT
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(root / "alembic.ini"), *args],
        cwd="/",
        env=launcher_env(url),
        capture_output=True,
        text=True,
        timeout=120,
    )
