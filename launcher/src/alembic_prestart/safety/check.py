"""The migration-safety step: analyse the pending revisions' DDL before the child applies it.

`--lint warn` (the default) logs one line per finding and goes on; `strict` refuses, with exit 5
and nothing applied; `off` skips it. SQLite is skipped with one line: the rules are
PostgreSQL's. The analysis itself is launcher/ddl_lint.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic_prestart.errors import EXIT_UNSAFE_MIGRATION, SupervisorError
from alembic_prestart.observe import logs

if TYPE_CHECKING:
    from alembic_prestart.config import Settings
    from alembic_prestart.db.session import PostgresSession
    from alembic_prestart.process.signals import SignalState
    from alembic_prestart.safety.analyse import Finding

RENDER_TIMEOUT_SECONDS = 120.0

_COLUMN_TYPES = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute AS a
JOIN pg_class AS c ON c.oid = a.attrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
"""


def findings_for_pending(
    settings: Settings,
    current: tuple[str, ...],
    session: PostgresSession | None,
    revision_files: dict[str, Path],
    signals: SignalState | None = None,
) -> list[Finding]:
    """Render what `upgrade heads` would run (Alembic's offline mode) and analyse it."""
    from alembic_prestart.safety.analyse import analyse, render_pending_sql, split_offline_sql

    sql = render_pending_sql(
        python=settings.python,
        alembic_ini=settings.alembic_ini,
        cwd=settings.project_root,
        env=settings.child_environment("supervisor lint"),
        current=current,
        # Rendering runs each revision's Python: one that sleeps or loops must not hold the
        # start-up longer than a migration may take.
        timeout=min(RENDER_TIMEOUT_SECONDS, settings.migration_timeout),
        signals=signals,
    )
    existing: dict[str, dict[str, str]] | None = None
    if session is not None:
        existing = {}
        for table, column, type_name in session.fetch(_COLUMN_TYPES, settings.schema):
            existing.setdefault(table, {})[column] = type_name
    return analyse(split_offline_sql(sql), revision_files=revision_files, existing_tables=existing)


def check_pending(
    settings: Settings,
    current: tuple[str, ...],
    session: PostgresSession | None,
    revision_files: dict[str, Path],
    signals: SignalState | None = None,
) -> list[Finding]:
    """Run the analysis as `settings.lint` asks; raise (exit 5) when strict finds anything."""
    if settings.lint == "off":
        return []
    if not settings.database_url.is_postgres:
        logs.logger.info("migration safety analysis skipped: its rules are PostgreSQL's")
        return []
    from alembic_prestart.safety.analyse import RenderError

    try:
        findings = findings_for_pending(settings, current, session, revision_files, signals)
    except RenderError as error:
        if settings.lint == "strict":
            raise SupervisorError(
                f"migration safety analysis failed, nothing applied (--lint strict): {error}",
                EXIT_UNSAFE_MIGRATION,
            ) from None
        logs.logger.warning("migration safety analysis skipped: %s", error)
        return []
    for finding in findings:
        logs.logger.warning("unsafe migration: %s", finding.line())
    if findings and settings.lint == "strict":
        raise SupervisorError(
            f"{len(findings)} unsafe statement(s) in the pending revisions; nothing applied "
            "(strict analysis). Follow each recipe, or silence a rule in its revision with "
            "`# migration-lint: ignore RULE -- reason`",
            EXIT_UNSAFE_MIGRATION,
        )
    if not findings:
        logs.logger.info("migration safety analysis: no finding")
    return findings
