"""Migration-safety analysis of the pending revisions, before they run.

Alembic renders the pending SQL offline (`upgrade <current>:heads --sql`, in a child); its
`-- Running upgrade a -> b` lines split it per revision; PostgreSQL's own parser (pglast) reads
each statement, and the rules of `safety.rules` judge it. A revision file opts out of one rule
with a comment that gives a reason:

    # migration-lint: ignore create-index-not-concurrently -- the table has under 1k rows

The analysis never raises: a statement PostgreSQL's grammar rejects is itself a finding.
"""

from __future__ import annotations

import io
import tokenize
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import TransactionStmtKind
from pglast.parser import ParseError, scan

from alembic_prestart.process import alembic_main
from alembic_prestart.process.signals import SignalState
from alembic_prestart.safety.rules import RULES, Problem, SchemaState, check, finish

UNPARSABLE = "unparsable-statement"
ANALYSIS_ERROR = "analysis-error"
IGNORE_WITHOUT_REASON = "ignore-without-reason"
IGNORE_UNKNOWN_RULE = "ignore-unknown-rule"
SILENCEABLE = RULES | {UNPARSABLE}

IGNORE_MARK = "migration-lint:"
STATEMENT_WIDTH = 120
_MARKER = "-- Running upgrade "  # Alembic's offline output: "-- Running upgrade a -> b"


@dataclass(frozen=True)
class Finding:
    rule: str  # short stable id, e.g. "create-index-not-concurrently"
    revision: str
    path: Path | None  # the revision's file
    statement: str  # the offending statement, one line, truncated
    message: str  # what is dangerous and the safe recipe, one line
    table: str | None = None  # the table it concerns, as the statement names it
    lock: str | None = None  # the lock mode the statement takes on it, e.g. "ACCESS EXCLUSIVE"

    def line(self) -> str:
        name = self.path.name if self.path is not None else "file unknown"
        return f"{self.revision} ({name}): {self.rule}: {self.message}: {self.statement}"


_BOUNDARIES: dict[str, Any] = {word: parse_sql(word)[0].stmt for word in ("BEGIN", "COMMIT")}


class RenderError(Exception):
    """Alembic could not render the pending SQL; the message is one line."""


@dataclass(frozen=True)
class _Statement:
    text: str
    node: ast.Node | None  # None: PostgreSQL's grammar rejects it


@dataclass(frozen=True)
class _Place:
    """Where a statement comes from: its revision, file, text, and the rules the file silences."""

    revision: str
    path: Path | None
    text: str
    ignored: frozenset[str]


def split_offline_sql(text: str) -> list[tuple[str, str]]:
    """Alembic's `upgrade a:b --sql` output -> [(revision id, its SQL)], in order.

    Alembic writes a migration's BEGIN before its `-- Running upgrade` line; that BEGIN is moved
    into the revision it opens, so each revision's SQL reads as it runs. What comes before the
    first revision (schema, search_path, the version table) belongs to none and is left out.
    """
    revisions: list[str] = []
    chunks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.startswith(_MARKER):
            revisions.append(line.removeprefix(_MARKER).rpartition("->")[2].strip())
            chunks.append([])
        else:
            chunks[-1].append(line)
    sql = ["\n".join(chunk).strip() for chunk in chunks]
    for index in range(len(revisions)):
        kept, carried = _split_opening_begin(sql[index], preamble=index == 0)
        sql[index] = kept
        sql[index + 1] = "\n\n".join(part for part in (carried, sql[index + 1]) if part)
    return list(zip(revisions, sql[1:], strict=True))


_COLUMN_TYPES_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute AS a
JOIN pg_class AS c ON c.oid = a.attrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = {schema} AND c.relkind IN ('r', 'p') AND a.attnum > 0
AND NOT a.attisdropped
"""
# The database's domains with a CHECK or NOT NULL constraint, by name (any schema).
_CONSTRAINED_DOMAINS_SQL = """
SELECT DISTINCT t.typname FROM pg_type AS t
WHERE t.typtype = 'd'
AND (t.typnotnull OR EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.contypid = t.oid))
"""


def sql_literal(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Catalog:
    """What the analysis reads from the live database before it judges anything, the same for
    the guard in the Alembic child and for `check --lint`: the schema's tables with their
    column types, the session's TimeZone, the constrained domains."""

    tables: dict[str, dict[str, str]]
    time_zone: str
    constrained_domains: list[str]

    @classmethod
    def read(cls, rows: Callable[[str], Sequence[Sequence[Any]]], schema: str) -> Catalog:
        """`rows` runs one query and returns its rows (on whatever connection the caller has)."""
        tables: dict[str, dict[str, str]] = {}
        for table, column, type_name in rows(_COLUMN_TYPES_SQL.format(schema=sql_literal(schema))):
            tables.setdefault(table, {})[column] = type_name
        return cls(
            tables=tables,
            time_zone=str(rows("SHOW TimeZone")[0][0]),
            constrained_domains=[row[0] for row in rows(_CONSTRAINED_DOMAINS_SQL)],
        )


class Analysis:
    """One migration run judged statement by statement, in the order they run: the offline
    rendering (`analyse`) and the guard inside the Alembic child feed the same rules so."""

    def __init__(
        self,
        *,
        existing_tables: Collection[str] | Mapping[str, Mapping[str, str]] | None = None,
        time_zone: str | None = None,
        constrained_domains: Collection[str] = (),
    ) -> None:
        self.state = SchemaState(
            existing_tables=existing_tables,
            time_zone=time_zone,
            constrained_domains=set(constrained_domains),
        )
        # A problem's source statement -> where it came from (a rename is reported at COMMIT,
        # against its own revision).
        self._places: dict[int, tuple[ast.Node, _Place]] = {}
        self._opt_outs: dict[Path | None, tuple[set[str], list[tuple[str, str, str]]]] = {}

    def opt_out_problems(self, revision: str, path: Path | None) -> list[Finding]:
        """The faulty opt-out comments of a revision's file, once per file."""
        if path in self._opt_outs:
            return []
        _ignored, problems = self._opt_outs.setdefault(path, _read_opt_outs(path))
        return [Finding(rule, revision, path, text, msg) for rule, msg, text in problems]

    def feed(self, revision: str, path: Path | None, sql: str) -> list[Finding]:
        """The findings of `sql` (one or more statements of `revision`), less its opt-outs."""
        findings = self.opt_out_problems(revision, path)
        ignored = frozenset(self._opt_outs[path][0])
        for statement in _statements(sql):
            place = _Place(revision, path, _one_line(statement.text), ignored)
            if statement.node is not None:
                self._places[id(statement.node)] = (statement.node, place)
            findings += _findings(_judge(statement, self.state), place, self._places)
        return findings

    def boundary(self, word: str) -> list[Finding]:
        """A transaction boundary the driver made without a statement ("BEGIN", "COMMIT")."""
        return _findings(check(_BOUNDARIES[word], self.state), None, self._places)

    def finish(self) -> list[Finding]:
        """What only the end of the run reveals (a rename no view made good)."""
        return _findings(finish(self.state), None, self._places)


def analyse(
    revisions: list[tuple[str, str]],
    *,
    revision_files: Mapping[str, Path],
    existing_tables: Collection[str] | Mapping[str, Mapping[str, str]] | None = None,
    time_zone: str | None = None,
    constrained_domains: Collection[str] = (),
) -> list[Finding]:
    """The dangerous statements of the pending revisions (in order), less the opted-out ones.

    `existing_tables`: the tables the database has (names without schema), or, as a mapping,
    each table's columns and their types as PostgreSQL's format_type() spells them (which lets
    a safe type widening pass). None: every table the pending SQL did not create exists.
    `time_zone`: the session's TimeZone setting (None: unknown), which decides whether
    timestamp to timestamptz rewrites the table. `constrained_domains`: the database's domains
    with a CHECK or NOT NULL constraint (a new column of one rewrites its table).
    """
    analysis = Analysis(
        existing_tables=existing_tables,
        time_zone=time_zone,
        constrained_domains=constrained_domains,
    )
    findings: list[Finding] = []
    for revision, sql in revisions:
        findings += analysis.feed(revision, revision_files.get(revision), sql)
    return findings + analysis.finish()


def _findings(
    problems: list[Problem], current: _Place | None, places: dict[int, tuple[ast.Node, _Place]]
) -> list[Finding]:
    """Each problem as a finding of the statement it lies in, unless its revision opts out."""
    findings: list[Finding] = []
    for problem in problems:
        place = current
        if problem.source is not None and id(problem.source) in places:
            place = places[id(problem.source)][1]
        if place is not None and problem.rule not in place.ignored:
            findings.append(
                Finding(
                    problem.rule,
                    place.revision,
                    place.path,
                    place.text,
                    problem.message,
                    table=problem.table,
                    lock=problem.lock,
                )
            )
    return findings


def render_pending_sql(
    *,
    python: str,
    alembic_ini: Path,
    cwd: Path,
    env: dict[str, str],
    current: tuple[str, ...],
    timeout: float,
    signals: SignalState | None = None,
    target: str = "heads",
) -> str:
    """The SQL of the revisions after `current` up to `target` (Alembic's offline mode, in a
    child run as the migration is: its own process group, stopped by a signal or at its
    deadline)."""
    from alembic_prestart.process.child import run_child

    if len(current) > 1:
        # Offline mode takes one starting revision; from any one of several heads it would
        # render the other branches' applied revisions as pending.
        raise RenderError(
            f"the database has several current heads ({', '.join(current)}); Alembic's offline "
            "mode renders from one revision only, so the pending SQL cannot be checked"
        )
    span = f"{current[0]}:{target}" if current else target
    argv = [python, "-m", alembic_main.__name__, "-c", str(alembic_ini), "upgrade", span, "--sql"]
    stderr: list[str] = []
    try:
        result = run_child(
            argv,
            cwd=cwd,
            env=env,
            timeout=timeout,
            signals=signals or SignalState(),
            log_format="text",
            on_line=stderr.append,
            what="rendering the pending SQL",
            capture_stdout=True,
        )
    except OSError as error:
        raise RenderError(f"cannot run {python}: {error.strerror or error}") from None
    if result.timed_out:
        raise RenderError(f"rendering the pending SQL timed out after {timeout:g}s")
    if result.interrupted_by is not None:
        raise RenderError("rendering the pending SQL was interrupted by a signal")
    stdout = result.stdout.decode("utf-8", errors="replace")
    if result.returncode != 0:
        from alembic_prestart.process.diagnosis import diagnose

        cause = diagnose(stderr or stdout.splitlines())
        raise RenderError(
            f"rendering the pending SQL failed (alembic upgrade {span} --sql, exit status "
            f"{result.returncode}): {cause}"
        )
    return stdout


def _judge(statement: _Statement, state: SchemaState) -> list[Problem]:
    if statement.node is None:
        message = "PostgreSQL's grammar rejects this statement, so it was not checked"
        return [Problem(UNPARSABLE, message)]
    try:
        return check(statement.node, state)
    except Exception as error:  # a shape the rules did not foresee must not stop the launcher
        return [Problem(ANALYSIS_ERROR, f"the statement could not be checked ({error!r})")]


def _statements(sql: str) -> list[_Statement]:
    """Each statement of `sql`, its text without comments, and its parse tree (if it has one)."""
    try:
        raws = parse_sql(sql)
    except ParseError:
        return [_parse_one(sql[start:end]) for start, end in _spans(sql)]
    statements: list[_Statement] = []
    for raw in raws:
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(sql)
        statements.append(_Statement(sql[start:end].strip(), raw.stmt))
    return statements


def _spans(sql: str) -> list[tuple[int, int]]:
    """Statement spans from PostgreSQL's scanner, split at each `;` outside quotes."""
    try:
        tokens = scan(sql)
    except ParseError:
        return [(0, len(sql))] if sql.strip() else []
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for token in tokens:
        if token.name == "ASCII_59":
            if start is not None:
                spans.append((start, token.start))
            start = None
        elif start is None:
            start = token.start
    if start is not None:
        spans.append((start, len(sql)))
    return spans


def _parse_one(text: str) -> _Statement:
    try:
        raws = parse_sql(text)
    except ParseError:
        return _Statement(text.strip(), None)
    return _Statement(text.strip(), raws[0].stmt if len(raws) == 1 else None)


def _split_opening_begin(sql: str, *, preamble: bool) -> tuple[str, str]:
    """(what stays, the BEGIN that opens the next revision's transaction)."""
    statements = _statements(sql)
    opening = 0
    while opening < len(statements) and _is_begin(statements[-1 - opening]):
        opening += 1
    if preamble:
        begins = [s for s in statements if _is_begin(s)]
        opened = bool(begins) and _ends_open(statements)
        return "", _joined(begins[-1:]) if opened else ""
    if not opening:
        return sql, ""
    kept = statements[: len(statements) - opening]
    return _joined(kept), _joined(statements[len(statements) - opening :])


def _is_begin(statement: _Statement) -> bool:
    node = statement.node
    return isinstance(node, ast.TransactionStmt) and node.kind in (
        TransactionStmtKind.TRANS_STMT_BEGIN,
        TransactionStmtKind.TRANS_STMT_START,
    )


def _ends_open(statements: list[_Statement]) -> bool:
    """True when the last transaction statement opens a transaction."""
    for statement in reversed(statements):
        if isinstance(statement.node, ast.TransactionStmt):
            return _is_begin(statement)
    return False


def _joined(statements: list[_Statement]) -> str:
    return "\n\n".join(statement.text + ";" for statement in statements)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= STATEMENT_WIDTH else line[: STATEMENT_WIDTH - 1] + "…"


def _read_opt_outs(path: Path | None) -> tuple[set[str], list[tuple[str, str, str]]]:
    """The rules a revision file silences, and (rule, message, comment) for each faulty
    opt-out comment. Only comments count (Python's tokenizer finds them)."""
    ignored: set[str] = set()
    problems: list[tuple[str, str, str]] = []
    for line_number, comment in _comments(path):
        body = comment.lstrip("#").strip()
        if not body.startswith(IGNORE_MARK):
            continue
        words, _dash, reason = body.removeprefix(IGNORE_MARK).partition("--")
        action, _space, rule = words.strip().partition(" ")
        rule = rule.strip()
        where = _one_line(f"line {line_number}: {comment}")
        if action != "ignore" or rule not in SILENCEABLE:
            known = ", ".join(sorted(SILENCEABLE))
            message = f"write `# {IGNORE_MARK} ignore RULE -- reason`, RULE one of: {known}"
            problems.append((IGNORE_UNKNOWN_RULE, message, where))
        elif not reason.strip():
            message = f"an opt-out must say why after `--`; {rule} is not silenced"
            problems.append((IGNORE_WITHOUT_REASON, message, where))
        else:
            ignored.add(rule)
    return ignored, problems


def _comments(path: Path | None) -> list[tuple[int, str]]:
    if path is None:
        return []
    try:
        source = path.read_bytes()
    except OSError:
        return []
    comments: list[tuple[int, str]] = []
    try:
        for token in tokenize.tokenize(io.BytesIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments.append((token.start[0], token.string))
    except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        pass  # a file Python cannot read: the comments found so far still count
    return comments
