"""Bring the schema to head: wait for the database, then run `alembic upgrade head` in a child.

The child is the only thing that ever migrates. The fast path only decides, from the static
revision graph and the version table, that there is nothing to do.

On PostgreSQL the launcher holds the migration lock itself, on the session it waited with:
when eight replicas start at once, the first migrates; the others wait on the lock, read the
version again once it is theirs, and start no child at all when the work is done. The child is
told which session holds the lock for it (MIGRATION_LOCK_HOLDER, the session's server pid) and
checks in pg_locks that this very session holds it. The session dies with the launcher, so a
crash never leaves the lock behind. SQLite: env.py takes the file lock itself.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from typing import TYPE_CHECKING

from alembic_prestart.config import Settings
from alembic_prestart.db.session import Interrupted, PostgresSession, RetryableError
from alembic_prestart.db.wait import DatabaseState, wait_for_database
from alembic_prestart.errors import (
    EXIT_DATABASE_UNAVAILABLE,
    EXIT_MIGRATION_FAILED,
    EXIT_MIGRATION_TIMEOUT,
    SupervisorError,
    exit_code_for_signal,
)
from alembic_prestart.lock.core import (
    LOCK_HOLDER_ENV,
    LockTimeout,
    Waiting,
    acquire_postgres,
    advisory_lock_key,
)
from alembic_prestart.observe import logs, phases
from alembic_prestart.process.signals import SignalState
from alembic_prestart.revisions.config import AlembicConfig
from alembic_prestart.revisions.graph import Revision, RevisionGraph, read_revision_graph
from alembic_prestart.safety.check import check_pending

if TYPE_CHECKING:
    from alembic_prestart.process.child import ChildResult


def application_name(role: str) -> str:
    return f"supervisor {role} pid={os.getpid()}"


def stop_if_signalled(signals: SignalState, during: str) -> None:
    if signals.received is not None:
        name = signal.Signals(signals.received).name
        raise SupervisorError(f"stopped by {name} {during}", exit_code_for_signal(signals.received))


def wait_for(settings: Settings, signals: SignalState) -> DatabaseState:
    """A session on the database (closed by the caller) and the revisions it is at."""
    where = settings.database_url.describe()
    if settings.database_url.is_postgres:
        where += f", schema {settings.schema}"
    logs.logger.info("database %s", where)
    phases.enter(phases.WAITING)
    state = wait_for_database(
        settings.database_url,
        schema=settings.schema,
        timeout=settings.db_wait,
        application_name=application_name("lock"),
        should_stop=lambda: signals.received is not None,
    )
    stop_if_signalled(signals, "while waiting for the database")
    assert state is not None  # None only when a signal came, which stopped us above
    return state


@functools.cache
def static_graph(config: AlembicConfig) -> RevisionGraph | None:
    """The static revision graph, read once per run (so stepping aside is said once)."""
    return read_revision_graph(config)


def pending_revisions(
    settings: Settings, versions: tuple[str, ...] | None
) -> list[Revision] | None:
    """The revisions `alembic upgrade heads` would run, from the static graph; None if unsure."""
    graph = static_graph(settings.alembic)
    return None if graph is None else graph.pending(versions or ())


def already_at_head(settings: Settings, state: DatabaseState) -> bool:
    """True only when the static graph proves there is nothing to apply: the database is at
    the code's head, or ahead of it (every revision it holds is one this code does not know:
    a newer release migrated it during a rolling deploy, and expand/contract keeps this
    release working on it; `alembic upgrade` would refuse such a database)."""
    if not state.versions:
        return False
    graph = static_graph(settings.alembic)
    if graph is None:
        return False
    at = ", ".join(state.versions)
    if graph.pending(state.versions) == []:
        logs.logger.info("database already at head (%s): migration child skipped", at)
        return True
    if graph.is_ahead(state.versions):
        logs.logger.warning(
            "database at %s, which this release does not know: a newer release migrated it; "
            "nothing to apply, migration child skipped",
            at,
        )
        return True
    return False


def upgrade_to_head(
    settings: Settings, signals: SignalState, state: DatabaseState, *, recheck: bool
) -> None:
    """Under the migration lock, run `alembic upgrade head` in a child and turn its failure
    into a SupervisorError. With `recheck`, no child starts if, once the lock is ours, the
    database turns out to be at head already (another replica did the work)."""
    phases.enter(phases.MIGRATING)
    session = state.session
    if session is not None and not _take_lock(session, settings, signals):
        stop_if_signalled(signals, "while waiting for the migration lock")
    versions = state.versions
    if session is not None:
        try:
            versions = session.versions(settings.schema)
        except RetryableError as error:
            raise SupervisorError(
                f"lost the database while holding the migration lock: {error}",
                EXIT_DATABASE_UNAVAILABLE,
            ) from None
        if recheck and already_at_head(settings, DatabaseState(versions=versions)):
            return
    planned = pending_revisions(settings, versions)
    if planned != []:  # nothing to analyse when the graph proves nothing is pending
        files = {revision.id: revision.path for revision in planned or []}
        check_pending(settings, versions or (), session, files, signals)
        stop_if_signalled(signals, "before the migration")
    if session is not None:
        # Whoever waits for the lock sees that its holder is migrating, not idle.
        session.fetch(
            "SELECT set_config('application_name', $1, false)", application_name("migrating")
        )
    _run_alembic(
        settings,
        signals,
        lock_holder=session.backend_pid if session else None,
        planned=[revision.id for revision in planned] if planned is not None else None,
    )
    logs.logger.info("migrations applied: schema at head")


def _take_lock(session: PostgresSession, settings: Settings, signals: SignalState) -> bool:
    database = str(session.fetchval("SELECT current_database()"))
    key = advisory_lock_key(database, settings.schema)
    waiting = Waiting(f"schema {settings.schema}", settings.migration_timeout, logs.logger)
    try:
        return acquire_postgres(
            session.fetch, key, waiting, should_stop=lambda: signals.received is not None
        )
    except LockTimeout as error:
        raise SupervisorError(
            f"{error} (--migration-timeout); the server was not started", EXIT_MIGRATION_TIMEOUT
        ) from None
    except Interrupted:
        return False
    except RetryableError as error:
        raise SupervisorError(
            f"lost the database while waiting for the migration lock: {error}",
            EXIT_DATABASE_UNAVAILABLE,
        ) from None


def _run_alembic(
    settings: Settings,
    signals: SignalState,
    *,
    lock_holder: int | None,
    planned: list[str] | None,
) -> None:
    from alembic_prestart.observe.progress import MigrationProgress
    from alembic_prestart.process.child import (
        run_child,  # subprocess and selectors: only when migrating
    )

    logs.logger.info("migrating to head (alembic upgrade head)")
    if settings.database_url.is_sqlite:
        # SQLite creates a missing file but not its folder, and Alembic's templates connect
        # before anything else runs: a fresh checkout's var/app.db would fail to open. A
        # folder we may not create is left for the child to report in its own words.
        with contextlib.suppress(OSError):
            settings.database_url.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    env = settings.child_environment(application_name("migrate"))
    if lock_holder is not None:
        env[LOCK_HOLDER_ENV] = str(lock_holder)
    argv = [settings.python, "-m", "alembic", "-c", str(settings.alembic_ini), "upgrade", "head"]
    progress = MigrationProgress(planned)
    result = run_child(
        argv,
        cwd=settings.project_root,
        env=env,
        timeout=settings.migration_timeout,
        signals=signals,
        log_format=settings.log_format,
        observe=progress.observe,
        tick=progress.tick,
    )
    if result.returncode == 0 and not result.timed_out and result.interrupted_by is None:
        progress.finish_revision()
    else:
        progress.abandon()
    _raise_for_result(result, settings)


def _raise_for_result(result: ChildResult, settings: Settings) -> None:
    from alembic_prestart.process.diagnosis import diagnose

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
        )


def _status(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return str(returncode)
