"""The migration-safety rules, over statements parsed by PostgreSQL's own parser (pglast).

One `SchemaState` walks the pending statements in order: it knows which tables the pending SQL
created (those are not "existing": no row, no reader, nothing to lock out), which indexes were
built concurrently, which NOT NULL checks were validated, and whether a transaction is open.
`check` returns each (rule id, message) a statement breaks. The conditions and recipes follow
squawk and strong_migrations.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from pglast import ast
from pglast.enums import (
    AlterTableType,
    ConstrType,
    NullTestType,
    ObjectType,
    TransactionStmtKind,
)

from alembic_prestart.safety.column_types import (
    SERIAL_TYPES,
    non_volatile,
    parse_type,
    safe_widening,
    spell,
    type_name_of,
)

CREATE_INDEX = "create-index-not-concurrently"
VOLATILE_DEFAULT = "add-column-volatile-default"
COLUMN_TYPE = "alter-column-type-rewrites"
SET_NOT_NULL = "set-not-null-without-check"
NOT_VALID = "constraint-without-not-valid"
DROP_COLUMN = "drop-column"
DROP_TABLE = "drop-table"
RENAME_COLUMN = "rename-column"
RENAME_TABLE = "rename-table"
CONCURRENTLY_IN_TRANSACTION = "concurrently-in-transaction"
UNIQUE_CONSTRAINT = "unique-constraint-without-index"

RULES: frozenset[str] = frozenset(
    {
        CREATE_INDEX,
        VOLATILE_DEFAULT,
        COLUMN_TYPE,
        SET_NOT_NULL,
        NOT_VALID,
        DROP_COLUMN,
        DROP_TABLE,
        RENAME_COLUMN,
        RENAME_TABLE,
        CONCURRENTLY_IN_TRANSACTION,
        UNIQUE_CONSTRAINT,
    }
)

_CONTRACT = (
    "the release still running during a rolling deploy uses it; stop using it in one release, "
    "{what} in the next"
)
MESSAGES: dict[str, str] = {
    CREATE_INDEX: "CREATE INDEX on an existing table blocks its writes while it builds; use "
    "CREATE INDEX CONCURRENTLY (op.create_index(..., postgresql_concurrently=True) inside "
    "op.get_context().autocommit_block())",
    VOLATILE_DEFAULT: "{what} rewrites the whole table under an ACCESS EXCLUSIVE lock; add the "
    "column without it, SET DEFAULT afterwards, backfill in batches",
    COLUMN_TYPE: "changing a column's type {why} rewrites the table under an ACCESS EXCLUSIVE "
    "lock; add a new column, write to both, backfill, switch reads, drop the old one",
    SET_NOT_NULL: "SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock; first ADD "
    "CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT, then SET NOT "
    "NULL (PostgreSQL 12+ uses the check and skips the scan)",
    NOT_VALID: "adding a {kind} constraint to an existing table scans it while blocking writes; "
    "add it NOT VALID (postgresql_not_valid=True), then VALIDATE CONSTRAINT in a later "
    "migration",
    DROP_COLUMN: "dropping a column breaks the previous release: " + _CONTRACT,
    DROP_TABLE: "dropping a table breaks the previous release: " + _CONTRACT,
    RENAME_COLUMN: "renaming a column breaks the previous release: add the new column, write "
    "to both, backfill, move reads, then drop the old one in a later release",
    RENAME_TABLE: "renaming a table breaks the previous release: create the new table (or a "
    "view under the old name), move reads and writes, then drop the old one in a later release",
    CONCURRENTLY_IN_TRANSACTION: "{what} CONCURRENTLY cannot run inside a transaction block; "
    "put it in `with op.get_context().autocommit_block():`",
    UNIQUE_CONSTRAINT: "a {kind} constraint on an existing table builds its index under an "
    "ACCESS EXCLUSIVE lock; CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... "
    "{kind} USING INDEX",
}


@dataclass
class SchemaState:
    """What the statements seen so far did; `existing_tables` is what the database has."""

    existing_tables: Collection[str] | None = None
    in_transaction: bool = False
    created_tables: set[str] = field(default_factory=set)
    concurrent_indexes: set[str] = field(default_factory=set)
    not_valid_checks: dict[str, tuple[str, str]] = field(default_factory=dict)
    validated_not_null: set[tuple[str, str]] = field(default_factory=set)
    column_types: dict[tuple[str, str], ast.TypeName] = field(default_factory=dict)

    def is_existing(self, table: str) -> bool:
        if table in self.created_tables:
            return False
        return self.existing_tables is None or table in self.existing_tables

    def known_type(self, table: str, column: str) -> ast.TypeName | None:
        if (table, column) in self.column_types:
            return self.column_types[(table, column)]
        if isinstance(self.existing_tables, Mapping) and table not in self.created_tables:
            spelled = self.existing_tables.get(table, {}).get(column)
            return parse_type(spelled) if isinstance(spelled, str) else None
        return None


Problem = tuple[str, str]  # (rule id, message)


def check(statement: ast.Node, state: SchemaState) -> list[Problem]:
    """The rules `statement` breaks, given the state before it; then update the state."""
    if isinstance(statement, ast.TransactionStmt):
        _transaction(statement, state)
        return []
    if isinstance(statement, ast.CreateStmt):
        _create_table(statement, state)
        return []
    if isinstance(statement, ast.CreateTableAsStmt) and statement.into is not None:
        state.created_tables.add(_table(statement.into.rel))
        return []
    if isinstance(statement, ast.IndexStmt):
        return _create_index(statement, state)
    if isinstance(statement, ast.AlterTableStmt):
        problems: list[Problem] = []
        for command in statement.cmds or ():
            if isinstance(command, ast.AlterTableCmd):
                problems += _alter_table(_table(statement.relation), command, state)
        return problems
    if isinstance(statement, ast.RenameStmt):
        return _rename(statement, state)
    if isinstance(statement, ast.DropStmt):
        return _drop(statement, state)
    if isinstance(statement, ast.ReindexStmt):
        concurrent = any(p.defname == "concurrently" for p in statement.params or ())
        if concurrent and state.in_transaction:
            return [_problem(CONCURRENTLY_IN_TRANSACTION, what="REINDEX")]
    return []


def _problem(rule: str, **details: str) -> Problem:
    return rule, MESSAGES[rule].format(**details)


def _transaction(statement: ast.TransactionStmt, state: SchemaState) -> None:
    if statement.kind in (
        TransactionStmtKind.TRANS_STMT_BEGIN,
        TransactionStmtKind.TRANS_STMT_START,
    ):
        state.in_transaction = True
    elif statement.kind in (
        TransactionStmtKind.TRANS_STMT_COMMIT,
        TransactionStmtKind.TRANS_STMT_ROLLBACK,
        TransactionStmtKind.TRANS_STMT_PREPARE,
    ):
        state.in_transaction = False


def _create_table(statement: ast.CreateStmt, state: SchemaState) -> None:
    table = _table(statement.relation)
    state.created_tables.add(table)
    for element in statement.tableElts or ():
        if isinstance(element, ast.ColumnDef) and element.typeName is not None:
            state.column_types[(table, element.colname or "")] = element.typeName


def _create_index(statement: ast.IndexStmt, state: SchemaState) -> list[Problem]:
    if statement.concurrent:
        if statement.idxname:
            state.concurrent_indexes.add(statement.idxname)
        if state.in_transaction:
            return [_problem(CONCURRENTLY_IN_TRANSACTION, what="CREATE INDEX")]
        return []
    if state.is_existing(_table(statement.relation)):
        return [_problem(CREATE_INDEX)]
    return []


def _alter_table(table: str, command: ast.AlterTableCmd, state: SchemaState) -> list[Problem]:
    existing = state.is_existing(table)
    subtype = command.subtype
    name = command.name or ""
    if subtype == AlterTableType.AT_AddColumn and isinstance(command.def_, ast.ColumnDef):
        column = command.def_
        if column.typeName is not None:
            state.column_types[(table, column.colname or "")] = column.typeName
        return _add_column(column) if existing else []
    if subtype == AlterTableType.AT_AlterColumnType and isinstance(command.def_, ast.ColumnDef):
        problems = _alter_type(table, name, command.def_, state) if existing else []
        if command.def_.typeName is not None:
            state.column_types[(table, name)] = command.def_.typeName
        return problems
    if subtype == AlterTableType.AT_SetNotNull:
        if existing and (table, name) not in state.validated_not_null:
            return [_problem(SET_NOT_NULL)]
        return []
    if subtype == AlterTableType.AT_AddConstraint and isinstance(command.def_, ast.Constraint):
        return _add_constraint(table, command.def_, state, existing=existing)
    if subtype == AlterTableType.AT_ValidateConstraint and command.name:
        checked = state.not_valid_checks.pop(command.name, None)
        if checked is not None and checked[0] == table:
            state.validated_not_null.add(checked)
        return []
    if subtype == AlterTableType.AT_DropColumn and existing:
        return [_problem(DROP_COLUMN, what="drop the column")]
    return []


def _add_column(column: ast.ColumnDef) -> list[Problem]:
    problems: list[Problem] = []
    if column.typeName is not None and type_name_of(column.typeName) in SERIAL_TYPES:
        problems.append(_problem(VOLATILE_DEFAULT, what="a serial column (a nextval() default)"))
    for constraint in column.constraints or ():
        if not isinstance(constraint, ast.Constraint):
            continue
        kind = constraint.contype
        if kind == ConstrType.CONSTR_DEFAULT and not non_volatile(constraint.raw_expr):
            what = "a default that may be volatile (a function PostgreSQL evaluates per row)"
            problems.append(_problem(VOLATILE_DEFAULT, what=what))
        elif kind == ConstrType.CONSTR_GENERATED:
            problems.append(_problem(VOLATILE_DEFAULT, what="a stored generated column"))
        elif kind == ConstrType.CONSTR_IDENTITY:
            problems.append(_problem(VOLATILE_DEFAULT, what="an identity column"))
        elif kind in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK):
            problems.append(_problem(NOT_VALID, kind=_constraint_kind(kind)))
        elif kind in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY):
            problems.append(_problem(UNIQUE_CONSTRAINT, kind=_constraint_kind(kind)))
    return problems


def _add_constraint(
    table: str, constraint: ast.Constraint, state: SchemaState, *, existing: bool
) -> list[Problem]:
    kind = constraint.contype
    if kind == ConstrType.CONSTR_CHECK:
        column = _not_null_column(constraint.raw_expr)
        if column is not None and constraint.skip_validation and constraint.conname:
            state.not_valid_checks[constraint.conname] = (table, column)
        elif column is not None:
            state.validated_not_null.add((table, column))
    if not existing:
        return []
    if kind in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK):
        if not constraint.skip_validation:
            return [_problem(NOT_VALID, kind=_constraint_kind(kind))]
    elif kind in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY) and not (
        constraint.indexname
    ):
        # USING INDEX attaches an index that exists already: a non-concurrent build of it in
        # the pending SQL is reported by create-index-not-concurrently.
        return [_problem(UNIQUE_CONSTRAINT, kind=_constraint_kind(kind))]
    return []


def _alter_type(
    table: str, column: str, definition: ast.ColumnDef, state: SchemaState
) -> list[Problem]:
    if definition.raw_default is not None:
        return [_problem(COLUMN_TYPE, why="with USING")]
    if definition.collClause is not None:
        return [_problem(COLUMN_TYPE, why="with COLLATE")]
    old = state.known_type(table, column)
    if old is None or definition.typeName is None:
        return [_problem(COLUMN_TYPE, why="(from a type not known here)")]
    if safe_widening(old, definition.typeName):
        return []
    why = f"from {spell(old)} to {spell(definition.typeName)}"
    return [_problem(COLUMN_TYPE, why=why)]


def _rename(statement: ast.RenameStmt, state: SchemaState) -> list[Problem]:
    table = _table(statement.relation)
    if statement.renameType == ObjectType.OBJECT_TABLE:
        if state.is_existing(table):
            return [_problem(RENAME_TABLE)]
        state.created_tables.discard(table)
        state.created_tables.add(statement.newname or "")
    elif statement.renameType == ObjectType.OBJECT_COLUMN and state.is_existing(table):
        return [_problem(RENAME_COLUMN)]
    return []


def _drop(statement: ast.DropStmt, state: SchemaState) -> list[Problem]:
    if statement.concurrent and state.in_transaction:
        return [_problem(CONCURRENTLY_IN_TRANSACTION, what="DROP INDEX")]
    if statement.removeType != ObjectType.OBJECT_TABLE:
        return []
    tables = [name[-1].sval for name in statement.objects or ()]
    existing = any(state.is_existing(table) for table in tables)
    state.created_tables.difference_update(tables)
    return [_problem(DROP_TABLE, what="drop the table")] if existing else []


def _table(relation: ast.RangeVar | None) -> str:
    """A table's name without its schema (pending SQL runs with search_path set)."""
    return relation.relname or "" if relation is not None else ""


def _constraint_kind(kind: ConstrType) -> str:
    return {
        ConstrType.CONSTR_FOREIGN: "FOREIGN KEY",
        ConstrType.CONSTR_CHECK: "CHECK",
        ConstrType.CONSTR_UNIQUE: "UNIQUE",
        ConstrType.CONSTR_PRIMARY: "PRIMARY KEY",
    }[kind]


def _not_null_column(expression: ast.Node | None) -> str | None:
    """The column of a `CHECK (column IS NOT NULL)`, else None."""
    if (
        not isinstance(expression, ast.NullTest)
        or expression.nulltesttype != NullTestType.IS_NOT_NULL
    ):
        return None
    reference = expression.arg
    if isinstance(reference, ast.ColumnRef) and len(reference.fields or ()) == 1:
        name = (reference.fields or ())[0]
        return name.sval if isinstance(name, ast.String) else None
    return None
