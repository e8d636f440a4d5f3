"""Run a child (the migration) in its own session: stream its output, bound its time, and
stop its whole process group on a timeout or a signal.
"""

from __future__ import annotations

import functools
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic_prestart.observe import logs
from alembic_prestart.process.signals import SignalState, signal_process_group

KILL_WAIT_SECONDS = 5.0  # grace between SIGTERM and SIGKILL
TAIL_LINES = 300
_READ_SLICE_SECONDS = 0.1


@dataclass(frozen=True)
class ChildResult:
    returncode: int
    timed_out: bool
    interrupted_by: int | None
    tail: tuple[str, ...]
    stdout: bytes = b""  # with capture_stdout: everything the child wrote to stdout
    aborted: str | None = None  # why `tick` had the child stopped


def run_child(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    signals: SignalState,
    log_format: str,
    on_line: Callable[[str], None] | None = None,
    observe: Callable[[str], None] | None = None,
    tick: Callable[[], str | None] | None = None,
    what: str = "migration",
    capture_stdout: bool = False,
) -> ChildResult:
    """Run argv (no shell), stream its lines to stderr as they come and keep the tail.

    `on_line` takes each line instead of stderr; `observe` sees each line as well; `tick` is
    called at least every 0.1 s while the child runs, and a reason it returns stops the child
    (SIGTERM, then SIGKILL after the grace) as a timeout does. With `capture_stdout`, only the
    child's stderr is treated so, and its stdout is returned whole (`ChildResult.stdout`)."""
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if capture_stdout else subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=functools.partial(_die_with_parent, os.getpid()),
    )
    # In its own session the child never sees the terminal's Ctrl-C; we forward signals.
    signals.forward_to_group = process.pid
    if signals.received is not None:  # a signal that came before the group existed
        signal_process_group(process.pid, signals.received)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    deadline = time.monotonic() + timeout
    timed_out = False
    aborted: str | None = None
    kill_at: float | None = None
    exit_fd = _open_exit_notifier(process.pid)
    lines_stream = process.stderr if capture_stdout else process.stdout
    assert lines_stream is not None and process.stdout is not None
    captured = bytearray()
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(lines_stream, selectors.EVENT_READ, "output")
            if capture_stdout:
                selector.register(process.stdout, selectors.EVENT_READ, "captured")
            if exit_fd is not None:
                # Wakes the select the moment the child exits, not a polling slice later.
                selector.register(exit_fd, selectors.EVENT_READ, "exit")
            pending = b""
            open_streams = 2 if capture_stdout else 1
            while open_streams or process.poll() is None:
                exited = process.poll() is not None
                ready = selector.select(0 if exited else _READ_SLICE_SECONDS)
                if exited and not any(key.data != "exit" for key, _ in ready):
                    break  # gone; whatever still holds the pipe is not worth waiting for
                for key, _events in ready:
                    if key.data == "exit":
                        selector.unregister(key.fileobj)
                        continue
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        open_streams -= 1
                        selector.unregister(key.fileobj)
                        continue
                    if key.data == "captured":
                        captured += chunk
                        continue
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        _emit(line, tail, log_format, on_line, observe)
                if tick is not None and aborted is None and not timed_out:
                    aborted = tick()
                    if aborted is not None:
                        logs.logger.error("%s: stopping the %s", aborted, what)
                        signal_process_group(process.pid, signal.SIGTERM)
                now = time.monotonic()
                if not timed_out and now >= deadline:
                    timed_out = True
                    logs.logger.error("%s exceeded its time (%gs): stopping it", what, timeout)
                    signal_process_group(process.pid, signal.SIGTERM)
                stopping = timed_out or aborted is not None or signals.received is not None
                if kill_at is None and stopping:
                    kill_at = now + KILL_WAIT_SECONDS
                if kill_at is not None and now >= kill_at and process.poll() is None:
                    signal_process_group(process.pid, signal.SIGKILL)
                    kill_at = float("inf")
            if pending:
                _emit(pending, tail, log_format, on_line, observe)
    finally:
        if exit_fd is not None:
            os.close(exit_fd)
        signals.forward_to_group = None
        # Nothing of the child may outlive it: grandchildren included.
        signal_process_group(process.pid, signal.SIGKILL)
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()
    return ChildResult(
        returncode=process.returncode,
        timed_out=timed_out,
        interrupted_by=signals.received,
        tail=tuple(tail),
        stdout=bytes(captured),
        aborted=aborted,
    )


def _open_exit_notifier(pid: int) -> int | None:
    """A pidfd (Linux 5.3+) that becomes readable when the child exits; None elsewhere."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _die_with_parent(parent_pid: int) -> None:
    """Runs in the child before exec: if the launcher is SIGKILLed (OOM killer, kill -9), the
    kernel kills the child too, so no orphaned migration keeps the migration lock."""
    if sys.platform != "linux":
        return
    import ctypes  # only in the forked child, never in the launcher's own start-up

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died between fork and prctl
        os._exit(1)


def _emit(
    raw: bytes,
    tail: deque[str],
    log_format: str,
    on_line: Callable[[str], None] | None,
    observe: Callable[[str], None] | None = None,
) -> None:
    line = raw.decode("utf-8", errors="replace").rstrip("\r")
    tail.append(logs.redact(line))
    if on_line is not None:
        on_line(line)
    else:
        sys.stderr.write(logs.child_line(line, log_format=log_format) + "\n")
        sys.stderr.flush()
    if observe is not None:
        observe(line)
