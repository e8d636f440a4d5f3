"""The safety analysis inside the Alembic child: each statement judged just before it runs.

Installed by the env.py lock helper (lock/env.py) on the migration's engine, it sees exactly
the SQL that runs, in order, data migrations (`op.get_bind()`) included, and judges it against
the live catalog (the schema's tables and column types, read once when the run starts) with the
rules of safety/rules.py, the same rules `check --lint` applies to the offline rendering.

- warn: each finding is logged as it runs, with its revision, the table's live size and the
  lock the statement takes; the statement runs.
- strict: the unsafe statement is refused before it runs: an error is raised from the cursor
  hook, the revision's transaction is rolled back by Alembic, and Alembic exits with a FAILED
  line that starts with REFUSED (the launcher turns that into exit 5).

Transactions reach the rules as BEGIN/COMMIT, as in the offline rendering: SQLAlchemy opens
them on the driver without a statement, so the guard reports each change of transaction.
The size informs; it never silences a rule (an empty table in a test database is a busy one
in production).
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic_prestart.lock.env import command_error, driver_rows
from alembic_prestart.safety.analyse import Analysis, Catalog, Finding, sql_literal
from alembic_prestart.safety.protocol import FINDING, REFUSED

logger = logging.getLogger("alembic.prestart")

# psycopg's placeholders are not SQL; PostgreSQL's grammar reads $n in their place.
_PYFORMAT = re.compile(r"%\((\w+)\)s|%s")


@dataclass
class SafetyGuard:
    mode: str  # warn, strict, off
    schema: str
    analysis: Analysis | None = None
    revision: tuple[str, Path | None] | None = None
    findings: list[Finding] = field(default_factory=list)
    _transaction: int | None = None
    _conn: Any = None

    @classmethod
    def for_run(cls, lint: str, *, schema: str) -> SafetyGuard:
        return cls(mode=lint, schema=schema)

    @property
    def active(self) -> bool:
        return self.mode != "off"

    def judge(self, conn: Any, statement: str) -> None:
        """Judge `statement` on `conn` before it runs; raise under strict when it is unsafe."""
        if not self.active or conn.dialect.name != "postgresql":
            return
        self._conn = conn
        if self.analysis is None:
            catalog = Catalog.read(lambda sql: driver_rows(conn, sql), self.schema)
            self.analysis = Analysis(
                existing_tables=catalog.tables,
                time_zone=catalog.time_zone,
                constrained_domains=catalog.constrained_domains,
            )
        self._report(self._follow_transaction(conn))
        revision_id, path = self._current_revision()
        sql = _PYFORMAT.sub("$1", statement)
        self._report(self.analysis.feed(revision_id, path, sql))

    def _report(self, findings: list[Finding]) -> None:
        for finding in findings:
            self.findings.append(finding)
            line = f"{finding.line()}{_table_size(self._conn, finding)}"
            if self.mode == "strict":
                raise command_error(
                    f"{REFUSED}: {line}; the statement did not run and its revision was rolled "
                    "back. Follow the recipe, or silence the rule in the revision with "
                    "`# migration-lint: ignore RULE -- reason`"
                )
            logger.warning("%s: %s", FINDING, line)

    def _follow_transaction(self, conn: Any) -> list[Finding]:
        """Tell the rules where transactions begin and end, as BEGIN and COMMIT would."""
        assert self.analysis is not None
        current = conn.get_transaction() if conn.in_transaction() else None
        identity = id(current) if current is not None else None
        if identity == self._transaction:
            return []
        findings: list[Finding] = []
        if self._transaction is not None:
            findings += self.analysis.boundary("COMMIT")
        if identity is not None:
            findings += self.analysis.boundary("BEGIN")
        self._transaction = identity
        return findings

    def _current_revision(self) -> tuple[str, Path | None]:
        """The revision whose upgrade() is on the stack: its file holds `revision = "..."`."""
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name in ("upgrade", "downgrade"):
                revision_id = frame.f_globals.get("revision")
                if isinstance(revision_id, str):
                    self.revision = (revision_id, Path(frame.f_code.co_filename))
                    return self.revision
            frame = frame.f_back  # type: ignore[assignment]
        # Alembic's own statements (the version table) belong to the last revision seen.
        return self.revision or ("(no revision)", None)

    def finish(self) -> None:
        """At the end of the run: what only the end reveals, then one line when all is well."""
        if not self.active or self.analysis is None:
            return
        if self._transaction is not None:
            self._transaction = None
            self._report(self.analysis.boundary("COMMIT"))
        self._report(self.analysis.finish())
        if not self.findings:
            logger.info("migration safety analysis: no finding")


def _table_size(conn: Any, finding: Finding) -> str:
    """`[table t: ~N rows, M MB]` from the catalog's estimates, or nothing when unknown."""
    table = finding.table
    if not table or conn is None:
        return ""
    rows = driver_rows(
        conn,
        f"SELECT c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_class AS c "
        f"WHERE c.oid = to_regclass({sql_literal(str(table))})",
    )
    takes = f"; takes {finding.lock}" if finding.lock else ""
    if not rows:
        return f" [table {table}{takes}]"
    estimate, size = rows[0]
    shown_rows = "unknown rows (never analysed)" if estimate < 0 else f"~{estimate} rows"
    return f" [table {table}: {shown_rows}, {_bytes(int(size))}{takes}]"


def _bytes(size: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size} TB"
