"""Bring the schema to head: wait for the database, then run `alembic upgrade head` in a child.

The child is the only thing that ever migrates. The fast path only decides, from the static
revision graph and the version table, that there is nothing to do.

On PostgreSQL the launcher holds the migration lock itself, on the session it waited with:
when eight replicas start at once, the first migrates; the others wait on the lock, read the
version again once it is theirs, and start no child at all when the work is done. The child is
told which session holds the lock for it (MIGRATION_LOCK_HOLDER, the session's server pid) and
checks in pg_locks, before each statement, that this very session still holds it. The launcher
keeps that session from idling out and proves every second that it still holds the lock; a lost
lock stops the child. The session dies with the launcher, so a crash never leaves the lock
behind. SQLite: env.py takes the file lock itself.

`--migration-timeout` is one budget for the whole phase: the wait for the lock, the safety
analysis and the child share one deadline. After the child, the launcher reads the version
table back where it looks, and says "at head" only when it read head there.

Each step is recorded in the start report (observe/report.py): its duration, the session the
lock wait was for, each revision's duration, the findings, and the outcome.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from alembic_prestart.config import Settings, application_name
from alembic_prestart.db.session import Interrupted, PostgresSession, RetryableError
from alembic_prestart.db.wait import DatabaseState, wait_for_database
from alembic_prestart.errors import (
    EXIT_CONFIG,
    EXIT_DATABASE_UNAVAILABLE,
    EXIT_MIGRATION_FAILED,
    EXIT_MIGRATION_TIMEOUT,
    EXIT_UNSAFE_MIGRATION,
    SupervisorError,
    exit_code_for_signal,
)
from alembic_prestart.lock.core import (
    CHECK_EVERY_SECONDS,
    POOLER_HINT,
    LockTimeout,
    Waiting,
    acquire_postgres,
    advisory_lock_key,
    held_by_sql,
    keep_alive_sql,
)
from alembic_prestart.observe import logs, phases
from alembic_prestart.observe.report import (
    AHEAD,
    AT_HEAD,
    MIGRATE,
    MIGRATED,
    READ_BACK,
    WAIT_FOR_LOCK,
    StartReport,
)
from alembic_prestart.process import alembic_main
from alembic_prestart.process.signals import SignalState, stop_if_signalled
from alembic_prestart.revisions.code import code_state, static_graph
from alembic_prestart.revisions.graph import Revision
from alembic_prestart.safety.check import GuardHandshake

if TYPE_CHECKING:
    from alembic_prestart.process.child import ChildResult

T = TypeVar("T")
LOCK_CHECK_TIMEOUT_SECONDS = 5.0


class Budget:
    """One deadline for the whole migration phase (--migration-timeout)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        # The same instant on the wall clock, for the child (another process's monotonic
        # clock is not ours to compare with).
        self.wall_deadline = time.time() + seconds

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


def wait_for(settings: Settings, signals: SignalState) -> DatabaseState:
    """A session on the database (closed by the caller) and the revisions it is at."""
    where = settings.database_url.display()
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


def pending_revisions(
    settings: Settings, versions: tuple[str, ...] | None
) -> list[Revision] | None:
    """The revisions `alembic upgrade heads` would run, from the static graph; None if unsure."""
    graph = static_graph(settings.alembic)
    return None if graph is None else graph.pending(versions or ())


def already_at_head(
    settings: Settings, state: DatabaseState, report: StartReport | None = None
) -> bool:
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
        outcome = AT_HEAD
    elif graph.is_ahead(state.versions):
        logs.logger.warning(
            "database at %s, which this release does not know: a newer release migrated it; "
            "nothing to apply, migration child skipped",
            at,
        )
        outcome = AHEAD
    else:
        return False
    if report is not None:
        report.outcome = outcome
        report.schema_revision = at
    return True


def guarded(session_call: Callable[[], T], during: str, exit_code: int) -> T:
    """One query of the launcher's: losing the server is the documented exit, never a bug."""
    try:
        return session_call()
    except RetryableError as error:
        raise SupervisorError(f"lost the database {during}: {error}", exit_code) from None


def upgrade_to_head(
    settings: Settings,
    signals: SignalState,
    state: DatabaseState,
    *,
    recheck: bool,
    report: StartReport,
) -> None:
    """Under the migration lock, run `alembic upgrade head` in a child and turn its failure
    into a SupervisorError. With `recheck`, no child starts if, once the lock is ours, the
    database turns out to be at head already (another replica did the work)."""
    phases.enter(phases.MIGRATING)
    budget = Budget(settings.migration_timeout)
    session = state.session
    key: int | None = None
    if session is not None:
        key = _take_lock(session, settings, signals, budget, report)
        if key is None:
            stop_if_signalled(signals, "while waiting for the migration lock")
            raise AssertionError("the lock wait ended without the lock or a signal")
        _keep_lock(session, key)
    versions = state.versions
    if session is not None:
        versions = guarded(
            lambda: session.versions(settings.schema),
            "while holding the migration lock",
            EXIT_DATABASE_UNAVAILABLE,
        )
        if recheck and already_at_head(settings, DatabaseState(versions=versions), report):
            return
    planned = pending_revisions(settings, versions)
    if session is not None:
        # Whoever waits for the lock sees that its holder is migrating, not idle.
        guarded(
            lambda: session.fetch(
                "SELECT set_config('application_name', $1, false)", application_name("migrating")
            ),
            "while holding the migration lock",
            EXIT_DATABASE_UNAVAILABLE,
        )
    _run_alembic(
        settings,
        signals,
        budget,
        lock=(session, key) if session is not None and key is not None else None,
        planned=[revision.id for revision in planned] if planned is not None else None,
        report=report,
    )
    with report.phase(READ_BACK):
        at = confirm_at_head(settings, signals, session)
    logs.logger.info("migrations applied: schema at head (%s)", at)
    # From what the version table held before and after, not from Alembic's log lines (which
    # a project's logging may hide): `--always-migrate` at head runs a child that applies none.
    report.outcome = MIGRATED if set(at.split(", ")) != set(versions or ()) else AT_HEAD
    report.schema_revision = at


class _RecordedWaiting(Waiting):
    """The waiting policy, remembering the first holder it waited on (for the start report);
    it asks who holds the lock no more often than the policy itself does."""

    holder: str | None = None

    def pause(self, holder: Callable[[], str]) -> float:
        if self.holder is None:
            first = self.holder = holder()
            return super().pause(lambda: first)
        return super().pause(holder)


def _take_lock(
    session: PostgresSession,
    settings: Settings,
    signals: SignalState,
    budget: Budget,
    report: StartReport,
) -> int | None:
    """The lock's key once it is ours; None when a signal came first."""
    database = str(
        guarded(
            lambda: session.fetchval("SELECT current_database()"),
            "before taking the migration lock",
            EXIT_DATABASE_UNAVAILABLE,
        )
    )
    key = advisory_lock_key(database, settings.schema)
    waiting = _RecordedWaiting(f"schema {settings.schema}", budget.remaining(), logs.logger)
    began = time.monotonic()
    try:
        taken = acquire_postgres(
            session.fetch, key, waiting, should_stop=lambda: signals.received is not None
        )
    except LockTimeout as error:
        raise SupervisorError(
            f"{error} (--migration-timeout); the server was not started", EXIT_MIGRATION_TIMEOUT
        ) from None
    except Interrupted:
        return None
    except RetryableError as error:
        raise SupervisorError(
            f"lost the database while waiting for the migration lock: {error}",
            EXIT_DATABASE_UNAVAILABLE,
        ) from None
    finally:
        report.lock_wait_seconds = report.phases[WAIT_FOR_LOCK] = time.monotonic() - began
        report.lock_holder = waiting.holder
    return key if taken else None


def _keep_lock(session: PostgresSession, key: int) -> None:
    """Keep the lock's session from being closed while the child migrates, and make sure the
    lock is really this session's (a transaction-pooling proxy would have lent another)."""
    during = "while holding the migration lock"
    version = int(
        guarded(
            lambda: session.fetchval("SELECT current_setting('server_version_num')"),
            during,
            EXIT_DATABASE_UNAVAILABLE,
        )
    )
    for statement in keep_alive_sql(version):
        guarded(lambda s=statement: session.fetch(s), during, EXIT_DATABASE_UNAVAILABLE)  # type: ignore[misc]
    held = guarded(
        lambda: session.fetchval(held_by_sql(key, session.backend_pid)),
        during,
        EXIT_DATABASE_UNAVAILABLE,
    )
    if not held:
        raise SupervisorError(
            f"configuration error: the migration lock was granted, but not to this session: "
            f"{POOLER_HINT}",
            EXIT_CONFIG,
        )


class LockWatch:
    """While the child runs: prove now and then that the launcher's session holds the lock."""

    def __init__(self, session: PostgresSession, key: int) -> None:
        self.session = session
        self.key = key
        self._last = time.monotonic()

    def check(self) -> str | None:
        """None while the lock is held; else why the migration must stop."""
        now = time.monotonic()
        if now - self._last < CHECK_EVERY_SECONDS:
            return None
        self._last = now
        try:
            held = self.session.fetchval(
                held_by_sql(self.key, self.session.backend_pid),
                timeout=LOCK_CHECK_TIMEOUT_SECONDS,
            )
        except Interrupted:
            return None  # the child run answers the signal itself
        except RetryableError as error:
            return f"the migration lock was lost with its session ({error})"
        if not held:
            return "the migration lock is no longer held by the launcher's session"
        return None


def _run_alembic(
    settings: Settings,
    signals: SignalState,
    budget: Budget,
    *,
    lock: tuple[PostgresSession, int] | None,
    planned: list[str] | None,
    report: StartReport,
) -> None:
    from alembic_prestart.observe.progress import MigrationProgress
    from alembic_prestart.process.child import run_child  # subprocess, selectors: when migrating

    logs.logger.info("migrating to head (alembic upgrade head)")
    if settings.lint != "off" and not settings.database_url.is_postgres:
        logs.logger.info("migration safety analysis skipped: its rules are PostgreSQL's")
    if settings.database_url.is_sqlite:
        # SQLite creates a missing file but not its folder, and Alembic's templates connect
        # before anything else runs: a fresh checkout's var/app.db would fail to open. A
        # folder we may not create is left for the child to report in its own words.
        with contextlib.suppress(OSError):
            settings.database_url.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    env = settings.child_environment(
        application_name("migrate"),
        lock_holder=lock[0].backend_pid if lock else None,
        deadline=budget.wall_deadline,
    )
    argv = [
        settings.python,
        "-m",
        alembic_main.__name__,
        "-c",
        str(settings.alembic_ini),
        "upgrade",
        "head",
    ]
    progress = MigrationProgress(planned)
    handshake = GuardHandshake(settings)
    watch = LockWatch(*lock) if lock else None

    def observe(line: str) -> None:
        progress.observe(line)
        handshake.observe(line)
        report.observe_child_line(line)

    def tick() -> str | None:
        progress.tick()
        return handshake.violation() or (watch.check() if watch else None)

    report.child_ran = True
    with report.phase(MIGRATE):
        result = run_child(
            argv,
            cwd=settings.project_root,
            env=env,
            timeout=budget.remaining(),
            signals=signals,
            log_format=settings.log_format,
            observe=observe,
            tick=tick,
        )
    succeeded = (
        result.returncode == 0
        and not result.timed_out
        and result.interrupted_by is None
        and result.aborted is None
    )
    if succeeded:
        progress.finish_revision()
        handshake.report()
    else:
        progress.abandon()
    report.revisions = progress.timings
    if handshake.refused or (handshake.missing and handshake.strict):
        _raise_refusal(settings, signals, lock[0] if lock else None, result)
    _raise_for_result(result, settings)


def _raise_refusal(
    settings: Settings,
    signals: SignalState,
    session: PostgresSession | None,
    result: ChildResult,
) -> None:
    """Strict analysis stopped the child: exit 5 (never 3), saying what was applied before."""
    from alembic_prestart.safety.protocol import REFUSED

    applied = "nothing"
    if session is not None:
        with contextlib.suppress(SupervisorError):
            versions = guarded(
                lambda: session.versions(settings.schema), "reading the version table", 0
            )
            applied = f"the database is at {', '.join(versions)}" if versions else "nothing"
    refusal = next((line for line in reversed(result.tail) if REFUSED in line), None)
    if refusal is not None:
        reason = refusal[refusal.index(REFUSED) :]
    else:
        reason = result.aborted or "the migration guard is not installed in env.py"
    raise SupervisorError(
        f"{reason}; revisions applied before it: {applied}; the server was not started",
        EXIT_UNSAFE_MIGRATION,
    )


def confirm_at_head(
    settings: Settings, signals: SignalState, session: PostgresSession | None
) -> str:
    """Read the version table back where the launcher looks; its revisions when at head, or
    exit 78 naming where the launcher looked (env.py wrote somewhere else)."""
    from alembic_prestart.db.session import read_sqlite_versions

    if session is not None:
        versions = guarded(
            lambda: session.versions(settings.schema),
            "after the migration, reading the version table back",
            EXIT_DATABASE_UNAVAILABLE,
        )
        where = f"{settings.schema}.alembic_version"
    else:
        versions = read_sqlite_versions(settings.database_url.sqlite_path)
        where = f"alembic_version in {settings.database_url.sqlite_path}"
    code = code_state(settings, signals, versions or ())
    if versions and code.at_head:
        return ", ".join(versions)
    found = ", ".join(versions) if versions else "nothing" if versions is not None else "no table"
    raise SupervisorError(
        f"configuration error: the migration child succeeded, but {where} holds {found}, not "
        f"the head ({', '.join(code.heads)}): env.py writes its version table somewhere else. "
        "Point the launcher at it (--schema / DATABASE_SCHEMA), or make env.py write there "
        "(version_table_schema, version_table, search_path)",
        EXIT_CONFIG,
    )


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
    if result.aborted is not None:
        raise SupervisorError(
            f"migration stopped: {result.aborted}; another migrator may now take the lock, so "
            "this one stopped before its next statement; the server was not started",
            EXIT_MIGRATION_FAILED,
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
