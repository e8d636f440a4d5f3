"""The launcher's side of the migration-safety analysis.

While migrating (serve, migrate), the analysis runs inside the Alembic child (safety/guard.py,
installed by env.py's lock helper) on each statement as it runs; the launcher only reads the
guard's handshake and refusals in the child's output (GuardHandshake). `check --lint` is the
dry run: Alembic renders the pending SQL offline, and the same rules judge it here, exit 5 on a
finding; check applies nothing either way. SQLite is skipped with one line: the rules are
PostgreSQL's. The analysis itself is safety/analyse.py and safety/rules.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic_prestart.config import application_name
from alembic_prestart.db.session import RetryableError
from alembic_prestart.errors import (
    EXIT_DATABASE_UNAVAILABLE,
    EXIT_UNSAFE_MIGRATION,
    SupervisorError,
)
from alembic_prestart.observe import logs

if TYPE_CHECKING:
    from alembic_prestart.config import Settings
    from alembic_prestart.db.session import PostgresSession
    from alembic_prestart.process.signals import SignalState
    from alembic_prestart.safety.analyse import Finding

RENDER_TIMEOUT_SECONDS = 120.0


def findings_for_pending(
    settings: Settings,
    current: tuple[str, ...],
    session: PostgresSession | None,
    revision_files: dict[str, Path],
    signals: SignalState | None = None,
    timeout: float = RENDER_TIMEOUT_SECONDS,
) -> list[Finding]:
    """Render what `upgrade heads` would run (Alembic's offline mode) and analyse it. A revision
    that cannot be rendered without running it (a data migration that reads rows through
    `op.get_bind()`) is named in one line, and the others are still judged."""
    from alembic_prestart.safety.analyse import (
        Catalog,
        RenderError,
        analyse,
        render_pending_sql,
        split_offline_sql,
    )

    def render(start: tuple[str, ...], target: str) -> str:
        return render_pending_sql(
            python=settings.python,
            alembic_ini=settings.alembic_ini,
            cwd=settings.project_root,
            env=settings.child_environment(application_name("lint")),
            current=start,
            target=target,
            # Rendering runs each revision's Python: one that sleeps or loops must not hold
            # the check longer than a migration may take.
            timeout=min(RENDER_TIMEOUT_SECONDS, timeout),
            signals=signals,
        )

    try:
        revisions = split_offline_sql(render(current, "heads"))
    except RenderError:
        if len(current) > 1 or len(revision_files) < 2:
            raise
        # One revision at a time, to name the one(s) that need a database to run.
        revisions = []
        start = current
        for revision in revision_files:
            try:
                revisions += split_offline_sql(render(start, revision))
            except RenderError as error:
                logs.logger.warning(
                    "revision %s cannot be judged without running it (%s); the other "
                    "revisions are judged, and the guard in the Alembic child judges it as it "
                    "runs",
                    revision,
                    error,
                )
            start = (revision,)
    if session is None:  # SQLite: no catalog to read
        return analyse(revisions, revision_files=revision_files)
    try:
        catalog = Catalog.read(session.fetch, settings.schema)
    except RetryableError as error:
        raise SupervisorError(
            f"lost the database during the migration safety analysis: {error}",
            EXIT_DATABASE_UNAVAILABLE,
        ) from None
    return analyse(
        revisions,
        revision_files=revision_files,
        existing_tables=catalog.tables,
        time_zone=catalog.time_zone,
        constrained_domains=catalog.constrained_domains,
    )


def check_pending(
    settings: Settings,
    current: tuple[str, ...],
    session: PostgresSession | None,
    revision_files: dict[str, Path],
    signals: SignalState | None = None,
    *,
    timeout: float = RENDER_TIMEOUT_SECONDS,
) -> list[Finding]:
    """Run the analysis as `settings.lint` asks; raise (exit 5) when strict finds anything."""
    if settings.lint == "off":
        return []
    if not settings.database_url.is_postgres:
        logs.logger.info("migration safety analysis skipped: its rules are PostgreSQL's")
        return []
    from alembic_prestart.safety.analyse import RenderError

    try:
        findings = findings_for_pending(
            settings, current, session, revision_files, signals, timeout=timeout
        )
    except RenderError as error:
        if settings.lint == "strict":
            raise SupervisorError(
                f"migration safety analysis failed (check --lint): {error}",
                EXIT_UNSAFE_MIGRATION,
            ) from None
        logs.logger.warning("migration safety analysis skipped: %s", error)
        return []
    for finding in findings:
        logs.logger.warning("unsafe migration: %s", finding.line())
    if findings and settings.lint == "strict":
        raise SupervisorError(
            f"{len(findings)} unsafe statement(s) in the pending revisions (check --lint). "
            "Follow each recipe, or silence a rule in its revision with "
            "`# migration-lint: ignore RULE -- reason`",
            EXIT_UNSAFE_MIGRATION,
        )
    if not findings:
        logs.logger.info("migration safety analysis: no finding")
    return findings


class GuardHandshake:
    """Whether the child's env.py installed the migration guard, read from its output.

    The guard logs one line when the lock helper installs it, before Alembic runs anything.
    Under strict, a child that starts a revision without it is stopped (its revision's
    transaction dies with it); under warn, one line says the analysis did not run.
    """

    def __init__(self, settings: Settings) -> None:
        self.required = settings.lint != "off" and settings.database_url.is_postgres
        self.strict = settings.lint == "strict"
        self.installed = False
        self.refused = False  # the guard refused a statement (strict)
        self.missing = False  # a revision started without the guard

    def observe(self, line: str) -> None:
        from alembic_prestart.safety.protocol import GUARD_INSTALLED, REFUSED

        if GUARD_INSTALLED in line:
            self.installed = True
        elif REFUSED in line:
            self.refused = True
        elif self.required and not self.installed and "Running upgrade " in line:
            self.missing = True

    def violation(self) -> str | None:
        """Why the child must stop now (strict, and no guard), else None."""
        if self.strict and self.missing:
            return (
                "the migration guard is not installed in env.py, so strict analysis cannot "
                "run; wrap the migration in `with migration_lock(connectable) as connection:` "
                "(or `async with async_migration_lock(...)`), from alembic_prestart"
            )
        return None

    def report(self) -> None:
        """After a successful child: say once if the analysis did not run."""
        if self.required and not self.installed:
            logs.logger.warning(
                "migration safety analysis did not run: env.py does not use "
                "alembic_prestart's migration_lock / async_migration_lock"
            )
