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

from pglast import parse_sql

from alembic_prestart.safety.analyse import (
    Finding,
    _judge,
    _one_line,
    _read_opt_outs,
    _statements,
)
from alembic_prestart.safety.protocol import FINDING, REFUSED
from alembic_prestart.safety.rules import SchemaState, check

logger = logging.getLogger("alembic.prestart")


# psycopg's placeholders are not SQL; PostgreSQL's grammar reads $n in their place.
_PYFORMAT = re.compile(r"%\((\w+)\)s|%s")

_TRANSACTION: dict[str, Any] = {word: parse_sql(word)[0].stmt for word in ("BEGIN", "COMMIT")}

_COLUMN_TYPES = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute AS a
JOIN pg_class AS c ON c.oid = a.attrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'p') AND a.attnum > 0
AND NOT a.attisdropped
"""


@dataclass
class _Revision:
    id: str
    path: Path | None
    ignored: set[str]


@dataclass
class SafetyGuard:
    mode: str  # warn, strict, off
    schema: str
    state: SchemaState | None = None
    revision: _Revision | None = None
    findings: list[Finding] = field(default_factory=list)
    _transaction: int | None = None

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
        if self.state is None:
            self.state = SchemaState(existing_tables=_existing_tables(conn, self.schema))
        self._follow_transaction(conn)
        revision = self._current_revision()
        sql = _PYFORMAT.sub(lambda _m: "$1", statement)
        for parsed in _statements(sql):
            for rule, message in _judge(parsed, self.state):
                if revision is not None and rule in revision.ignored:
                    continue
                finding = Finding(
                    rule,
                    revision.id if revision else "(no revision)",
                    revision.path if revision else None,
                    _one_line(parsed.text),
                    message,
                )
                self._report(conn, finding)

    def _report(self, conn: Any, finding: Finding) -> None:
        self.findings.append(finding)
        size = _table_size(conn, finding)
        line = f"{finding.line()}{size}"
        if self.mode == "strict":
            from alembic_prestart.lock.env import _command_error

            raise _command_error(
                f"{REFUSED}: {line}; the statement did not run and its revision was rolled "
                "back. Follow the recipe, or silence the rule in the revision with "
                "`# migration-lint: ignore RULE -- reason`"
            )
        logger.warning("%s: %s", FINDING, line)

    def _follow_transaction(self, conn: Any) -> None:
        """Tell the rules where transactions begin and end, as BEGIN and COMMIT would."""
        assert self.state is not None
        current = conn.get_transaction() if conn.in_transaction() else None
        identity = id(current) if current is not None else None
        if identity == self._transaction:
            return
        if self._transaction is not None:
            check(_TRANSACTION["COMMIT"], self.state)
        if identity is not None:
            check(_TRANSACTION["BEGIN"], self.state)
        self._transaction = identity

    def _current_revision(self) -> _Revision | None:
        """The revision whose upgrade() is on the stack: its file holds `revision = "..."`."""
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name in ("upgrade", "downgrade"):
                revision_id = frame.f_globals.get("revision")
                if isinstance(revision_id, str):
                    path = Path(frame.f_code.co_filename)
                    if self.revision is None or self.revision.id != revision_id:
                        ignored, _problems = _read_opt_outs(path)
                        self.revision = _Revision(revision_id, path, ignored)
                    return self.revision
            frame = frame.f_back  # type: ignore[assignment]
        return self.revision  # Alembic's own statements (the version table): the last one

    def finish(self) -> None:
        if self.active and self.state is not None and not self.findings:
            logger.info("migration safety analysis: no finding")


def _cursor_rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    """On the DBAPI connection itself: no SQLAlchemy event (and no guard) runs for it."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _existing_tables(conn: Any, schema: str) -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {}
    for table, column, type_name in _cursor_rows(conn, _COLUMN_TYPES.format(schema=schema)):
        tables.setdefault(table, {})[column] = type_name
    return tables


def _table_size(conn: Any, finding: Finding) -> str:
    """`[table t: ~N rows, M MB]` from the catalog's estimates, or nothing when unknown."""
    table = getattr(finding, "table", None)
    if not table:
        return ""
    literal = "'" + str(table).replace("'", "''") + "'"
    rows = _cursor_rows(
        conn,
        f"SELECT c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_class AS c "
        f"WHERE c.oid = to_regclass({literal})",
    )
    lock = getattr(finding, "lock", None)
    takes = f"; takes {lock}" if lock else ""
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
