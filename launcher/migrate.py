"""Bring the schema to head: wait for the database, then run `alembic upgrade head` in a child.

The child is the only thing that ever migrates. The fast path only decides, from the static
revision graph and the version table, that there is nothing to do.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

from launcher import logs, pgwire, phases
from launcher.alembic_config import AlembicConfigError, load_alembic_config
from launcher.database_wait import DatabaseState, wait_for_database
from launcher.errors import (
    EXIT_MIGRATION_FAILED,
    EXIT_MIGRATION_TIMEOUT,
    SupervisorError,
    exit_code_for_signal,
)
from launcher.lock_key import LOCK_HOLDER_ENV
from launcher.migration_lock import hold_migration_lock
from launcher.revisions import RevisionGraph, read_revision_graph
from launcher.settings import ALEMBIC_INI, Settings
from launcher.signals import SignalState

if TYPE_CHECKING:
    from launcher.child import ChildResult

REPORT_TAIL_LINES = 20


def application_name(role: str) -> str:
    return f"supervisor {role} pid={os.getpid()}"


def stop_if_signalled(signals: SignalState, during: str) -> None:
    if signals.received is not None:
        name = signal.Signals(signals.received).name
        raise SupervisorError(f"stopped by {name} {during}", exit_code_for_signal(signals.received))


def wait_for(settings: Settings, signals: SignalState) -> DatabaseState:
    phases.enter(phases.WAITING)
    state = wait_for_database(
        settings.database_url,
        schema=settings.schema,
        timeout=settings.db_wait,
        application_name=application_name("wait"),
        should_stop=lambda: signals.received is not None,
    )
    stop_if_signalled(signals, "while waiting for the database")
    return state


def already_at_head(state: DatabaseState) -> bool:
    """True only when the static graph proves there is nothing to apply."""
    if not state.versions:
        return False
    graph = static_revision_graph()
    if graph is None:
        logs.logger.info("revision files not readable statically: asking alembic")
        return False
    pending = graph.pending(state.versions)
    if pending == []:
        logs.logger.info(
            "database already at head (%s): migration child skipped", ", ".join(state.versions)
        )
        return True
    return False


def static_revision_graph() -> RevisionGraph | None:
    """The revision graph read without Alembic, or None when only Alembic can tell."""
    try:
        return read_revision_graph(load_alembic_config(ALEMBIC_INI))
    except AlembicConfigError as error:
        logs.logger.info("%s: asking alembic", error)
        return None


def upgrade_to_head(settings: Settings, signals: SignalState, *, recheck: bool) -> None:
    """Under the migration lock, run `alembic upgrade head` in a child and turn its failure
    into a SupervisorError. With `recheck`, no child starts if, once the lock is ours, the
    database turns out to be at head already (another replica did the work)."""
    phases.enter(phases.MIGRATING)
    with hold_migration_lock(settings, signals, application_name("lock")) as lock:
        stop_if_signalled(signals, "while waiting for the migration lock")
        if lock is not None and recheck:
            try:
                versions = lock.session.versions(settings.schema)
            except pgwire.Unsupported:
                versions = None
            if already_at_head(DatabaseState(versions=versions)):
                return
        _run_alembic(settings, signals, lock_holder=lock.backend_pid if lock else None)
    logs.logger.info("migrations applied: schema at head")


def _run_alembic(settings: Settings, signals: SignalState, *, lock_holder: int | None) -> None:
    from launcher.child import run_child  # subprocess and selectors: only when migrating

    logs.logger.info("migrating to head (alembic upgrade head)")
    env = settings.child_environment(application_name("migrate"))
    if lock_holder is not None:
        env[LOCK_HOLDER_ENV] = str(lock_holder)
    argv = [settings.python, "-m", "alembic", "-c", str(settings.alembic_ini), "upgrade", "head"]
    result = run_child(
        argv,
        cwd=settings.project_root,
        env=env,
        timeout=settings.migration_timeout,
        signals=signals,
        log_format=settings.log_format,
    )
    _raise_for_result(result, settings)


def _raise_for_result(result: ChildResult, settings: Settings) -> None:
    from launcher.diagnosis import diagnose

    if result.interrupted_by is not None:
        name = signal.Signals(result.interrupted_by).name
        raise SupervisorError(
            f"stopped by {name} during the migration (child exit status "
            f"{_status(result.returncode)}); the server was not started",
            exit_code_for_signal(result.interrupted_by),
        )
    if result.timed_out:
        raise SupervisorError(
            f"migration timed out after {settings.migration_timeout:g}s "
            "(--migration-timeout) and was stopped; the server was not started",
            EXIT_MIGRATION_TIMEOUT,
        )
    if result.returncode != 0:
        raise SupervisorError(
            f"migration failed (alembic exit status {_status(result.returncode)}): "
            f"{diagnose(result.tail)}",
            EXIT_MIGRATION_FAILED,
            details=result.tail[-REPORT_TAIL_LINES:],
        )


def _status(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return str(returncode)
