"""Serving: the port check, uvicorn's command line, and the exec that makes the launcher uvicorn.

After the exec the process is uvicorn (same PID), so systemd, honcho and container runtimes
signal it directly; the readiness watcher (process/notify.py) tells systemd once it answers.
uvicorn runs through uvicorn_main.py (its own CLI, with workers that die with it) and, unless
the user chose `--http`, with the header-limited httptools protocol; h11 gets the same limit.
The start report travels to the app in its environment (ALEMBIC_PRESTART_START_REPORT).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from alembic_prestart.config import Settings, application_name
from alembic_prestart.errors import EXIT_CANNOT_LISTEN, SupervisorError
from alembic_prestart.observe import logs, phases
from alembic_prestart.observe.report import START_REPORT
from alembic_prestart.process import header_limit, uvicorn_main


def ensure_port_free(host: str, port: int) -> None:
    """Fail with a clear line now rather than let uvicorn die on its bind after the exec."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise SupervisorError(
            f"cannot listen on {host}:{port}: {error.strerror}", EXIT_CANNOT_LISTEN
        ) from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # uvicorn binds with SO_REUSEADDR too: TIME_WAIT leftovers must not count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise SupervisorError(
                f"cannot listen on {host}:{port}: {error.strerror}", EXIT_CANNOT_LISTEN
            ) from None


def uvicorn_argv(
    *,
    python: str,
    app: str,
    host: str,
    port: int,
    workers: int,
    app_dir: Path,
    json_logs: bool = False,
    max_header_bytes: int = header_limit.DEFAULT_MAX_HEADER_BYTES,
    extra: Sequence[str] = (),
) -> list[str]:
    """uvicorn's command line as the launcher execs it (the benchmarks run the same).

    `max_header_bytes` goes to h11 here; the httptools protocol reads it from the environment
    (MAX_HEADER_BYTES), where exec_uvicorn puts the same number."""
    argv = [python, "-m", uvicorn_main.__name__, app, "--host", host, "--port", str(port)]
    argv += ["--workers", str(workers), "--app-dir", str(app_dir)]
    if json_logs:
        argv += ["--log-config", str(logs.UVICORN_JSON_CONFIG)]
    if not _given(extra, "--http"):
        argv += ["--http", uvicorn_main.HEADER_LIMITED_PROTOCOL]
    if not _given(extra, "--h11-max-incomplete-event-size"):
        argv += ["--h11-max-incomplete-event-size", str(max_header_bytes)]
    return argv + list(extra)


def _given(extra: Sequence[str], option: str) -> bool:
    return any(arg == option or arg.startswith(option + "=") for arg in extra)


def exec_uvicorn(settings: Settings, *, start_report: str | None = None) -> None:
    max_header_bytes = settings.max_header_bytes  # checked by the CLI (--max-header-bytes)
    argv = uvicorn_argv(
        python=settings.python,
        app=settings.app,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        app_dir=settings.project_root,
        json_logs=settings.log_format == "json",
        max_header_bytes=max_header_bytes,
        extra=settings.uvicorn_args,
    )
    logs.logger.info(
        "starting uvicorn on %s:%s (%d worker%s)",
        settings.host,
        settings.port,
        settings.workers,
        "" if settings.workers == 1 else "s",
    )
    env = settings.child_environment(application_name("service"))
    env[header_limit.MAX_HEADER_BYTES] = str(max_header_bytes)  # what the protocol enforces
    # This start's report, never one inherited from whatever started the launcher.
    env.pop(START_REPORT, None)
    if start_report is not None:
        env[START_REPORT] = start_report
    os.chdir(settings.project_root)  # relative paths the app reads resolve as the child's did
    # The watcher reports READY=1 once uvicorn answers; uvicorn itself knows nothing of systemd.
    env.pop("NOTIFY_SOCKET", None)
    phases.notifier().start_readiness_watcher(
        settings.host, settings.port, os.getpid(), settings.ready_path
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(settings.python, argv, env)
