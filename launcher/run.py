"""The launcher's three commands: serve, migrate and check."""

from __future__ import annotations

import os
import socket
import sys

from launcher import logs, phases
from launcher.errors import (
    EXIT_CANNOT_LISTEN,
    EXIT_MIGRATION_FAILED,
    EXIT_OK,
    EXIT_PENDING,
    SupervisorError,
)
from launcher.migrate import (
    already_at_head,
    application_name,
    static_revision_graph,
    stop_if_signalled,
    upgrade_to_head,
    wait_for,
)
from launcher.settings import Settings
from launcher.signals import capture_signals


def serve(settings: Settings) -> None:
    """Migrate to head (unless skipped), then replace this process with uvicorn."""
    with capture_signals() as signals:
        # A taken port fails before anything is applied; checked again right before the exec.
        ensure_port_free(settings.host, settings.port)
        if settings.skip_migrations:
            logs.logger.info("migrations skipped (--skip-migrations)")
        else:
            state = wait_for(settings, signals)
            if settings.always_migrate or not already_at_head(state):
                upgrade_to_head(settings, signals, recheck=not settings.always_migrate)
        stop_if_signalled(signals, "before the server started")
        phases.enter(phases.STARTING)
        ensure_port_free(settings.host, settings.port)
    # After the handlers are restored, so that no signal can slip between check and restore.
    stop_if_signalled(signals, "before the server started")
    # The original dispositions are back: exec must not inherit our handlers' absence.
    exec_uvicorn(settings)


def migrate(settings: Settings) -> int:
    """Wait for the database and migrate to head in a child; never starts the server."""
    with capture_signals() as signals:
        wait_for(settings, signals)
        upgrade_to_head(settings, signals, recheck=False)
    return EXIT_OK


def check(settings: Settings) -> int:
    """Exit 0 when the schema is at head, 1 listing what is pending. Applies nothing."""
    with capture_signals() as signals:
        state = wait_for(settings, signals)
        current = state.versions or ()
        graph = static_revision_graph()
        revisions = graph.pending(current) if graph else None
        pending = [revision.id for revision in revisions] if revisions is not None else None
        if pending is None:
            current, pending = _ask_alembic_for_pending(settings, signals)
    at = ", ".join(current) or "an empty database"
    if not pending:
        logs.logger.info("schema at head (%s)", at)
        return EXIT_OK
    logs.logger.warning("%d revision(s) pending on %s:", len(pending), at)
    for revision in pending:
        print(revision, flush=True)
    return EXIT_PENDING


def _ask_alembic_for_pending(settings: Settings, signals) -> tuple[tuple[str, ...], list[str]]:
    """The slow, authoritative answer: `python -m migrations.status` in a child."""
    from launcher.child import run_child

    phases.enter(phases.CHECKING)
    lines: list[str] = []
    result = run_child(
        [settings.python, "-m", "migrations.status"],
        cwd=settings.project_root,
        env=settings.child_environment(application_name("check")),
        timeout=settings.migration_timeout,
        signals=signals,
        log_format=settings.log_format,
        on_line=lines.append,
    )
    stop_if_signalled(signals, "while checking")
    if result.returncode != 0:
        from launcher.diagnosis import diagnose

        raise SupervisorError(
            f"check failed (exit status {result.returncode}): {diagnose(result.tail)}",
            EXIT_MIGRATION_FAILED,
        )
    current = tuple(line.split()[1] for line in lines if line.startswith("current "))
    pending = [line.split()[1] for line in lines if line.startswith("pending ")]
    return current, pending


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


def uvicorn_argv(settings: Settings) -> list[str]:
    argv = [
        settings.python,
        "-m",
        "uvicorn",
        settings.app,
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--workers",
        str(settings.workers),
        "--app-dir",
        str(settings.project_root),
    ]
    if settings.log_format == "json":
        argv += ["--log-config", str(logs.UVICORN_JSON_CONFIG)]
    return argv + list(settings.uvicorn_args)


def exec_uvicorn(settings: Settings) -> None:
    argv = uvicorn_argv(settings)
    logs.logger.info(
        "starting uvicorn on %s:%s (%d worker%s)",
        settings.host,
        settings.port,
        settings.workers,
        "" if settings.workers == 1 else "s",
    )
    env = settings.child_environment(application_name("service"))
    # The watcher reports READY=1 once uvicorn answers; uvicorn itself knows nothing of systemd.
    env.pop("NOTIFY_SOCKET", None)
    phases.notifier().start_readiness_watcher(settings.host, settings.port, os.getpid())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(settings.python, argv, env)
