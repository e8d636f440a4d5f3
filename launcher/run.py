"""The launcher's three commands: serve, migrate and check."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    stop_if_signalled,
    upgrade_to_head,
    wait_for,
)
from launcher.safety import check_pending
from launcher.settings import Settings
from launcher.signals import SignalState, capture_signals

QUERY_TIMEOUT_SECONDS = 120.0


def serve(settings: Settings) -> None:
    """Migrate to head (unless skipped), then replace this process with uvicorn."""
    with capture_signals() as signals:
        # A taken port fails before anything is applied; checked again right before the exec.
        ensure_port_free(settings.host, settings.port)
        if settings.skip_migrations:
            logs.logger.info("migrations skipped (--skip-migrations)")
        else:
            bring_to_head(settings, signals)
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
        bring_to_head(settings, signals)
    return EXIT_OK


def bring_to_head(settings: Settings, signals: SignalState) -> None:
    """Wait for the database; unless it is provably at head, migrate it in a child."""
    state = wait_for(settings, signals)
    try:
        if settings.always_migrate or not already_at_head(settings, state):
            upgrade_to_head(settings, signals, state, recheck=not settings.always_migrate)
    finally:
        state.close()


def check(settings: Settings) -> int:
    """Exit 0 when the schema is at head, 1 listing what is pending (5 with --lint and a
    finding). Applies nothing."""
    with capture_signals() as signals:
        state = wait_for(settings, signals)
        try:
            current = state.versions or ()
            pending = _pending_with_files(settings, signals, current)
            at = ", ".join(current) or "an empty database"
            if not pending:
                logs.logger.info("schema at head (%s)", at)
                return EXIT_OK
            logs.logger.warning("%d revision(s) pending on %s:", len(pending), at)
            for revision, message, _path in pending:
                print(f"{revision}  {message}".rstrip(), flush=True)
            files = {revision: Path(path) for revision, _message, path in pending if path}
            check_pending(settings, current, state.session, files, signals)
        finally:
            state.close()
    return EXIT_PENDING


def _pending_with_files(
    settings: Settings, signals: SignalState, current: tuple[str, ...]
) -> list[tuple[str, str, str | None]]:
    """(revision, message, file) of what `upgrade heads` would run: statically when sure."""
    graph = _static_graph(settings)
    steps = graph.pending(current) if graph is not None else None
    if steps is not None:
        return [(step.id, step.message, str(step.path)) for step in steps]
    answer = _ask_alembic(settings, signals, current)
    return [(revision, doc, path) for revision, doc, path in answer["pending"]]


def status(settings: Settings) -> int:
    """The database's revisions, the code's heads, and the history with what is applied."""
    with capture_signals() as signals:
        state = wait_for(settings, signals)
        state.close()
        current = state.versions or ()
        graph = _static_graph(settings)
        if graph is not None and graph.pending(current) is not None:
            heads = list(graph.heads)
            pending_ids = {step.id for step in graph.pending(current) or []}
            history = [(rev.id, rev.message) for rev in graph.chain()]
        else:
            answer = _ask_alembic(settings, signals, current)
            heads = answer["heads"]
            pending_ids = {rev for rev, _doc in answer["pending"]}
            history = [(rev, doc) for rev, _downs, doc in answer["history"]]
    print(f"database: {settings.database_url.describe()} (schema {settings.schema})")
    print(f"current:  {', '.join(current) or '(empty: nothing applied)'}")
    print(f"head:     {', '.join(heads)}")
    print("history, oldest first:")
    for revision, message in history:
        mark = "pending" if revision in pending_ids else "applied"
        print(f"  {revision}  {mark:<8} {message}".rstrip())
    sys.stdout.flush()
    return EXIT_OK if not pending_ids else EXIT_PENDING


def _static_graph(settings: Settings):  # type: ignore[no-untyped-def]
    from launcher.revisions import read_revision_graph

    return read_revision_graph(settings.alembic)


def _ask_alembic(
    settings: Settings, signals: SignalState, current: tuple[str, ...]
) -> dict[str, Any]:
    """The slow, authoritative answer: Alembic's own script directory, in a child."""
    import json

    from launcher.child import run_child

    phases.enter(phases.CHECKING)
    lines: list[str] = []
    result = run_child(
        [settings.python, "-m", "launcher.alembic_query", str(settings.alembic_ini), *current],
        cwd=settings.project_root,
        env=settings.child_environment(application_name("check")),
        timeout=QUERY_TIMEOUT_SECONDS,
        signals=signals,
        log_format=settings.log_format,
        on_line=lines.append,
        what="the revision query",
    )
    stop_if_signalled(signals, "while checking")
    if result.returncode != 0:
        from launcher.diagnosis import diagnose

        raise SupervisorError(
            f"Alembic could not read the revisions (exit status {result.returncode}): "
            f"{diagnose(result.tail)}",
            EXIT_MIGRATION_FAILED,
        )
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


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
    extra: Sequence[str] = (),
) -> list[str]:
    """uvicorn's command line as the launcher execs it (the benchmarks run the same)."""
    argv = [python, "-m", "uvicorn", app, "--host", host, "--port", str(port)]
    argv += ["--workers", str(workers), "--app-dir", str(app_dir)]
    if json_logs:
        argv += ["--log-config", str(logs.UVICORN_JSON_CONFIG)]
    return argv + list(extra)


def exec_uvicorn(settings: Settings) -> None:
    argv = uvicorn_argv(
        python=settings.python,
        app=settings.app,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        app_dir=settings.project_root,
        json_logs=settings.log_format == "json",
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
    os.chdir(settings.project_root)  # relative paths the app reads resolve as the child's did
    # The watcher reports READY=1 once uvicorn answers; uvicorn itself knows nothing of systemd.
    env.pop("NOTIFY_SOCKET", None)
    phases.notifier().start_readiness_watcher(settings.host, settings.port, os.getpid())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(settings.python, argv, env)
