"""The launcher's commands: serve, migrate, check and status.

serve and migrate each keep a start report (observe/report.py), logged as they end, failing or
not; serve hands it to the uvicorn it becomes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic_prestart.config import Settings
from alembic_prestart.errors import (
    EXIT_MIGRATION_FAILED,
    EXIT_OK,
    EXIT_PENDING,
    SupervisorError,
)
from alembic_prestart.observe import logs, phases
from alembic_prestart.observe.report import SKIPPED, WAIT_FOR_DATABASE, StartReport
from alembic_prestart.process.serve import ensure_port_free, exec_uvicorn
from alembic_prestart.process.signals import SignalState, capture_signals, stop_if_signalled
from alembic_prestart.revisions.code import code_state
from alembic_prestart.safety.check import check_pending
from alembic_prestart.upgrade import already_at_head, upgrade_to_head, wait_for


def serve(settings: Settings) -> None:
    """Migrate to head (unless skipped), then replace this process with uvicorn."""
    report = StartReport("serve")
    with report.recording():
        with capture_signals() as signals:
            # A taken port fails before anything is applied; checked again before the exec.
            ensure_port_free(settings.host, settings.port)
            if settings.skip_migrations:
                logs.logger.info("migrations skipped (--skip-migrations)")
                report.outcome = SKIPPED
            else:
                bring_to_head(settings, signals, report)
            stop_if_signalled(signals, "before the server started")
            phases.enter(phases.STARTING)
            ensure_port_free(settings.host, settings.port)
        # After the handlers are restored, so that no signal can slip between check and restore.
        stop_if_signalled(signals, "before the server started")
        report.finish()
    # The original dispositions are back: exec must not inherit our handlers' absence.
    exec_uvicorn(settings, start_report=report.to_environment())


def migrate(settings: Settings) -> int:
    """Wait for the database and migrate to head in a child; never starts the server."""
    report = StartReport("migrate")
    with report.recording():
        with capture_signals() as signals:
            bring_to_head(settings, signals, report)
        report.finish(exit_code=EXIT_OK)
    return EXIT_OK


def bring_to_head(settings: Settings, signals: SignalState, report: StartReport) -> None:
    """Wait for the database; unless it is provably at head, migrate it in a child."""
    with report.phase(WAIT_FOR_DATABASE):
        state = wait_for(settings, signals)
    try:
        if settings.always_migrate or not already_at_head(settings, state, report):
            upgrade_to_head(
                settings, signals, state, recheck=not settings.always_migrate, report=report
            )
    finally:
        state.close()


def check(settings: Settings) -> int:
    """Exit 0 when the schema is at head (or ahead of it), 1 listing what is pending, 3 when
    the code has several heads (`alembic upgrade head` would refuse), 5 with --lint and a
    finding. Applies nothing."""
    with capture_signals() as signals:
        state = wait_for(settings, signals)
        phases.enter(phases.CHECKING)
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
        phases.enter(phases.CHECKING)
        state.close()
        current = state.versions or ()
        code = code_state(settings, signals, current)
    pending_ids = {revision for revision, _message, _path in code.pending}
    where = settings.database_url.display()
    if settings.database_url.is_postgres:
        where += f" (schema {settings.schema})"
    print(f"database: {where}")
    note = "  (ahead: a revision this code does not know)" if code.ahead else ""
    print(f"current:  {', '.join(current) or '(empty: nothing applied)'}{note}")
    print(f"head:     {', '.join(code.heads)}")
    print("history, oldest first:")
    width = max((len(revision) for revision, _message in code.history), default=0)
    for revision, message in code.history:
        mark = "pending" if revision in pending_ids else "applied"
        print(f"  {revision:<{width}}  {mark:<8} {message}".rstrip())
    sys.stdout.flush()
    return EXIT_OK if not pending_ids else EXIT_PENDING
