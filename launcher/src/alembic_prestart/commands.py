"""The launcher's three commands: serve, migrate and check."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic_prestart.config import Settings
from alembic_prestart.errors import (
    EXIT_CANNOT_LISTEN,
    EXIT_MIGRATION_FAILED,
    EXIT_OK,
    EXIT_PENDING,
    SupervisorError,
)
from alembic_prestart.observe import logs, phases
from alembic_prestart.process.signals import SignalState, capture_signals
from alembic_prestart.safety.check import check_pending
from alembic_prestart.upgrade import (
    already_at_head,
    application_name,
    static_graph,
    stop_if_signalled,
    upgrade_to_head,
    wait_for,
)

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


@dataclass(frozen=True)
class CodeState:
    """What the code's revisions say of a database at `current`."""

    heads: list[str]
    pending: list[tuple[str, str, str | None]]  # (revision, message, file), in order
    history: list[tuple[str, str]]  # (revision, message), oldest first
    ahead: bool  # the database holds only revisions this code does not know


def code_state(settings: Settings, signals: SignalState, current: tuple[str, ...]) -> CodeState:
    """From the static graph when it is sure, else from Alembic itself, in a child."""
    graph = static_graph(settings.alembic)
    if graph is not None:
        history = [(revision.id, revision.message) for revision in graph.chain()]
        ahead = graph.is_ahead(current)
        steps = [] if ahead else graph.pending(current)
        if steps is not None:
            pending: list[tuple[str, str, str | None]] = [
                (step.id, step.message, str(step.path)) for step in steps
            ]
            return CodeState(list(graph.heads), pending, history, ahead)
    answer = _ask_alembic(settings, signals, current)
    return CodeState(
        heads=answer["heads"],
        pending=[(revision, doc, path) for revision, doc, path in answer["pending"]],
        history=[(revision, doc) for revision, _downs, doc in answer["history"]],
        ahead=answer["ahead"],
    )


def check(settings: Settings) -> int:
    """Exit 0 when the schema is at head (or ahead of it), 1 listing what is pending, 3 when
    the code has several heads (`alembic upgrade head` would refuse), 5 with --lint and a
    finding. Applies nothing."""
    with capture_signals() as signals:
        state = wait_for(settings, signals)
        try:
            current = state.versions or ()
            code = code_state(settings, signals, current)
            at = ", ".join(current) or "an empty database"
            if len(code.heads) > 1:
                raise SupervisorError(
                    f"the code has {len(code.heads)} heads ({', '.join(code.heads)}): "
                    "`alembic upgrade head` will refuse them; merge them with "
                    "`alembic merge heads`",
                    EXIT_MIGRATION_FAILED,
                )
            if code.ahead:
                logs.logger.warning(
                    "database at %s, which this code does not know: a newer release migrated "
                    "it; nothing to apply",
                    at,
                )
                return EXIT_OK
            if not code.pending:
                logs.logger.info("schema at head (%s)", at)
                return EXIT_OK
            logs.logger.warning("%d revision(s) pending on %s:", len(code.pending), at)
            for revision, message, _path in code.pending:
                print(f"{revision}  {message}".rstrip(), flush=True)
            files = {revision: Path(path) for revision, _message, path in code.pending if path}
            check_pending(settings, current, state.session, files, signals)
        finally:
            state.close()
    return EXIT_PENDING


def status(settings: Settings) -> int:
    """The database's revisions, the code's heads, and the history with what is applied."""
    with capture_signals() as signals:
        state = wait_for(settings, signals)
        state.close()
        current = state.versions or ()
        code = code_state(settings, signals, current)
    pending_ids = {revision for revision, _message, _path in code.pending}
    print(f"database: {settings.database_url.describe()} (schema {settings.schema})")
    note = "  (ahead: a revision this code does not know)" if code.ahead else ""
    print(f"current:  {', '.join(current) or '(empty: nothing applied)'}{note}")
    print(f"head:     {', '.join(code.heads)}")
    print("history, oldest first:")
    for revision, message in code.history:
        mark = "pending" if revision in pending_ids else "applied"
        print(f"  {revision}  {mark:<8} {message}".rstrip())
    sys.stdout.flush()
    return EXIT_OK if not pending_ids else EXIT_PENDING


def _ask_alembic(
    settings: Settings, signals: SignalState, current: tuple[str, ...]
) -> dict[str, Any]:
    """The slow, authoritative answer: Alembic's own script directory, in a child."""
    import json

    from alembic_prestart.process.child import run_child

    phases.enter(phases.CHECKING)
    lines: list[str] = []
    result = run_child(
        [
            settings.python,
            "-m",
            "alembic_prestart.revisions.query",
            str(settings.alembic_ini),
            *current,
        ],
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
        from alembic_prestart.process.diagnosis import diagnose

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
