"""The migration-safety rules, over statements parsed by PostgreSQL's own parser (pglast).

One `SchemaState` is fed every statement of a migration run in execution order (BEGIN and
COMMIT, DDL, and the UPDATEs of data migrations alike): it knows which tables the run created
(those are not "existing": no row, no reader, nothing to lock out), the column types read from
the database, which NOT NULL checks were validated, and what the open transaction holds. The
per-statement, stateful shape lets the same rules run on each statement just before it executes.
`check` returns the problems a statement has, each with the table it concerns and the lock mode
PostgreSQL 15 takes on it (as documented for ALTER TABLE's subcommands and the other commands).

A rename's danger shows only when its transaction commits: a view under the old name, created
before COMMIT, keeps the running release reading. Such a problem is reported on the COMMIT (or,
outside a transaction block, on the next statement), carrying the statement it lies in;
`finish` reports what is still pending when the run ends. The conditions and recipes follow
squawk, strong_migrations and django-pg-zero-downtime-migrations, checked against PostgreSQL 15.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import (
    AlterTableType,
    ConstrType,
    DropBehavior,
    NullTestType,
    ObjectType,
    ReindexObjectType,
    TransactionStmtKind,
    VariableSetKind,
)
from pglast.parser import ParseError

from alembic_prestart.safety.column_types import (
    SERIAL_TYPES,
    in_place,
    non_volatile,
    parse_type,
    picks_batch,
    reads_column,
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
VALIDATE_UNDER_LOCK = "validate-constraint-under-lock"
REQUIRED_COLUMN = "add-column-not-null-without-default"
DROPPED_DEFAULT = "drop-default-of-not-null-column"
DOMAIN_SCAN = "alter-domain-scans-columns"
REINDEX = "reindex-not-concurrently"
TRUNCATE = "truncate-table"
TRUNCATE_CASCADE = "truncate-cascade"
DROP_DATABASE = "drop-database"
EXCLUSION_CONSTRAINT = "exclusion-constraint"
RENAME_ENUM_VALUE = "rename-enum-value"
RENAME_SCHEMA = "rename-schema"
SET_TABLESPACE = "set-tablespace"
SET_LOGGED = "set-logged-or-unlogged"
VACUUM_FULL = "vacuum-full"
CLUSTER = "cluster"
REFRESH = "refresh-materialized-view-not-concurrently"
BACKFILL_UNDER_LOCK = "backfill-under-lock"
JSON_COLUMN = "add-json-column"
SET_SCHEMA = "set-schema"
DROP_SCHEMA_CASCADE = "drop-schema-cascade"
NEW_ENUM_VALUE_USED = "enum-value-used-before-commit"
DOMAIN_COLUMN = "add-column-of-constrained-domain"

_CONTRACT = (
    "the release still running during a rolling deploy uses it; stop using it in one release, "
    "{what} in the next"
)
_REWRITE = "rewrites the whole table under an ACCESS EXCLUSIVE lock (no reads, no writes); "
MESSAGES: dict[str, str] = {
    CREATE_INDEX: "CREATE INDEX on an existing table blocks its writes while it builds; use "
    "CREATE INDEX CONCURRENTLY (op.create_index(..., postgresql_concurrently=True) inside "
    "op.get_context().autocommit_block())",
    VOLATILE_DEFAULT: "{what} rewrites the whole table under an ACCESS EXCLUSIVE lock; add the "
    "column without it, SET DEFAULT afterwards, backfill in batches",
    COLUMN_TYPE: "changing a column's type {why} under an ACCESS EXCLUSIVE lock; add a new "
    "column, write to both, backfill, switch reads, drop the old one",
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
    "view under the old name in the same transaction), move reads and writes, then drop the "
    "old one in a later release",
    CONCURRENTLY_IN_TRANSACTION: "{what} CONCURRENTLY cannot run inside a transaction block; "
    "put it in `with op.get_context().autocommit_block():`",
    UNIQUE_CONSTRAINT: "a {kind} constraint on an existing table builds its index under an "
    "ACCESS EXCLUSIVE lock; CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... "
    "{kind} USING INDEX",
    VALIDATE_UNDER_LOCK: "VALIDATE CONSTRAINT scans the table while this transaction still "
    "holds the {held} lock its {source} took, so {blocked} wait for the whole scan; COMMIT "
    "first (VALIDATE in a later migration, or in op.get_context().autocommit_block())",
    REQUIRED_COLUMN: "ADD COLUMN ... NOT NULL without a default fails on a table with rows, and "
    "the running release's inserts (which omit the column) fail; add it nullable or with a "
    "constant DEFAULT, backfill, then SET NOT NULL behind a validated CHECK",
    DROPPED_DEFAULT: "dropping the default this run gave a NOT NULL column makes the running "
    "release's inserts (which omit the column) fail; keep the DEFAULT until no running release "
    "omits the column, and drop it in a later migration",
    DOMAIN_SCAN: "{what} checks every column of the domain's type under a SHARE lock on each "
    "table (writes blocked while it scans); put the constraint on the columns instead: CHECK "
    "... NOT VALID, then VALIDATE CONSTRAINT",
    REINDEX: "REINDEX without CONCURRENTLY blocks the table's writes (SHARE) and reads through "
    "the index (ACCESS EXCLUSIVE on it) while it rebuilds; use REINDEX ... CONCURRENTLY outside "
    "a transaction block",
    TRUNCATE: "TRUNCATE empties a table the running release reads and writes, under an ACCESS "
    "EXCLUSIVE lock; stop using the rows first, then delete them in batches",
    TRUNCATE_CASCADE: "TRUNCATE ... CASCADE also empties every table with a foreign key to it; "
    "name each table to empty, without CASCADE",
    DROP_DATABASE: "DROP DATABASE destroys every table in it; never drop a database from a "
    "migration",
    EXCLUSION_CONSTRAINT: "an EXCLUDE constraint on an existing table builds its index and "
    "checks every row under an ACCESS EXCLUSIVE lock, and cannot be added NOT VALID; create a "
    "new table with the constraint and copy the rows over in batches",
    RENAME_ENUM_VALUE: "renaming an enum value breaks the running release, which still writes "
    "and compares the old one; add the new value, write it, backfill, then stop using the old",
    RENAME_SCHEMA: "renaming a schema breaks the running release, which still names the old "
    "one; create the new schema, move each object and its use over releases, then drop the old",
    SET_TABLESPACE: "SET TABLESPACE copies the whole table under an ACCESS EXCLUSIVE lock (no "
    "reads, no writes); create a table in the new tablespace and copy the rows in batches",
    SET_LOGGED: "SET LOGGED / SET UNLOGGED " + _REWRITE + "create a table with the wanted "
    "persistence and copy the rows in batches",
    VACUUM_FULL: "VACUUM FULL " + _REWRITE + "use plain VACUUM, or pg_repack to compact it online",
    CLUSTER: "CLUSTER " + _REWRITE + "use pg_repack to reorder it online",
    REFRESH: "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks every read of the view while "
    "it recomputes; give the view a unique index and REFRESH MATERIALIZED VIEW CONCURRENTLY",
    BACKFILL_UNDER_LOCK: "this {what} of the whole table runs while the transaction holds the "
    "{held} lock its {source} took, so {blocked} wait for the whole backfill; COMMIT first, "
    "then update in batches (WHERE id BETWEEN ..., or a LIMIT-ed subquery), one transaction each",
    JSON_COLUMN: "a json column has no equality operator, so the running release's SELECT "
    "DISTINCT, UNION and GROUP BY over the table fail; use jsonb",
    SET_SCHEMA: "moving a table to another schema breaks the previous release, which still "
    "finds it under the old one; create the new table (or a view in the old schema), move "
    "reads and writes, then drop the old one in a later release",
    DROP_SCHEMA_CASCADE: "DROP SCHEMA ... CASCADE drops every table, view and type in the "
    "schema with it; drop each object by name (a plain DROP SCHEMA refuses a schema that is "
    "not empty)",
    NEW_ENUM_VALUE_USED: "a value ALTER TYPE ... ADD VALUE added cannot be used before its "
    "transaction commits (PostgreSQL: unsafe use of new value), so this migration fails; add "
    "the value in a migration of its own (or in op.get_context().autocommit_block())",
    DOMAIN_COLUMN: "adding a column of a domain with a CHECK or NOT NULL constraint "
    + _REWRITE
    + "add the column with the domain's base type, then CHECK ... NOT VALID and VALIDATE "
    "CONSTRAINT, and change the type once the table is small or empty",
}
RULES: frozenset[str] = frozenset(MESSAGES)

# PostgreSQL's table lock modes, weakest first (LOCKMODE 1 to 8).
ACCESS_SHARE = "ACCESS SHARE"
ROW_SHARE = "ROW SHARE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
LOCK_MODES = (
    ACCESS_SHARE,
    ROW_SHARE,
    ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    EXCLUSIVE,
    ACCESS_EXCLUSIVE,
)
BLOCKS_WRITES = frozenset(LOCK_MODES[LOCK_MODES.index(SHARE) :])  # conflict with ROW EXCLUSIVE

# ALTER TABLE subcommands taking less than ACCESS EXCLUSIVE (PostgreSQL 15's documentation of
# ALTER TABLE; tablecmds.c AlterTableGetLockLevel). ADD CONSTRAINT and DETACH PARTITION depend
# on their details and are handled where they are judged.
_SUBCOMMAND_LOCKS: dict[AlterTableType, str] = {
    AlterTableType.AT_SetStatistics: SHARE_UPDATE_EXCLUSIVE,
    AlterTableType.AT_SetOptions: SHARE_UPDATE_EXCLUSIVE,
    AlterTableType.AT_ResetOptions: SHARE_UPDATE_EXCLUSIVE,
    AlterTableType.AT_ClusterOn: SHARE_UPDATE_EXCLUSIVE,
    AlterTableType.AT_DropCluster: SHARE_UPDATE_EXCLUSIVE,
    AlterTableType.AT_SetRelOptions: SHARE_UPDATE_EXCLUSIVE,
    AlterTableType.AT_ResetRelOptions: SHARE_UPDATE_EXCLUSIVE,
    AlterTableType.AT_ValidateConstraint: SHARE_UPDATE_EXCLUSIVE,
    AlterTableType.AT_AttachPartition: SHARE_UPDATE_EXCLUSIVE,
    AlterTableType.AT_DetachPartitionFinalize: SHARE_UPDATE_EXCLUSIVE,
    AlterTableType.AT_EnableTrig: SHARE_ROW_EXCLUSIVE,
    AlterTableType.AT_EnableAlwaysTrig: SHARE_ROW_EXCLUSIVE,
    AlterTableType.AT_EnableReplicaTrig: SHARE_ROW_EXCLUSIVE,
    AlterTableType.AT_EnableTrigAll: SHARE_ROW_EXCLUSIVE,
    AlterTableType.AT_EnableTrigUser: SHARE_ROW_EXCLUSIVE,
    AlterTableType.AT_DisableTrig: SHARE_ROW_EXCLUSIVE,
    AlterTableType.AT_DisableTrigAll: SHARE_ROW_EXCLUSIVE,
    AlterTableType.AT_DisableTrigUser: SHARE_ROW_EXCLUSIVE,
}
# Session TimeZone values with a fixed zero offset: PostgreSQL 12+ then changes timestamp to
# timestamptz (and back) without a rewrite (pg_get_timezone_offset() succeeds with 0).
UTC_ZONES = frozenset(
    {"utc", "uct", "gmt", "gmt0", "gmt+0", "gmt-0", "greenwich", "universal", "zulu"}
)


@dataclass(frozen=True)
class Problem:
    """A rule a statement breaks: its id, the one-line message, the table it concerns (as the
    statement names it, schema-qualified or bare) and the lock mode the statement takes on it."""

    rule: str
    message: str
    table: str | None = None
    lock: str | None = None
    # The statement the problem lies in, when it is reported on a later one (a rename known to
    # break readers only once its transaction commits without a view under the old name).
    source: ast.Node | None = None

    def __iter__(self) -> Iterator[str]:
        """(rule, message): a problem unpacks as it did before it carried its table and lock."""
        return iter((self.rule, self.message))


@dataclass
class Transaction:
    """What an open transaction (or, outside a transaction block, the last statement) holds."""

    # table -> (the strongest write-blocking lock held on it, the command that took it)
    locks: dict[str, tuple[str, str]] = field(default_factory=dict)
    # name -> renames that break its readers unless a view takes the name back before COMMIT
    broken_names: dict[str, list[Problem]] = field(default_factory=dict)
    time_zone: str | None = None  # SET LOCAL TimeZone
    new_enum_values: set[str] = field(default_factory=set)  # ADD VALUE, not yet committed


@dataclass
class SchemaState:
    """What the statements seen so far did; `existing_tables` is what the database has (names,
    or each table's column types as format_type() spells them); `time_zone` is the session's
    TimeZone as the database reports it (None: unknown)."""

    existing_tables: Collection[str] | Mapping[str, Mapping[str, str]] | None = None
    time_zone: str | None = None
    in_transaction: bool = False
    transaction: Transaction = field(default_factory=Transaction)
    created_tables: set[str] = field(default_factory=set)  # tables, views, materialized views
    created_objects: set[tuple[str, str]] = field(default_factory=set)  # (kind, name)
    renamed_tables: dict[str, str] = field(default_factory=dict)  # new name -> existing table
    concurrent_indexes: set[str] = field(default_factory=set)
    added_constraints: dict[str, str] = field(default_factory=dict)  # name -> table
    not_valid_checks: dict[str, tuple[str, str]] = field(default_factory=dict)
    validated_not_null: set[tuple[str, str]] = field(default_factory=set)
    validated_elsewhere: set[tuple[str, str]] = field(default_factory=set)  # (table, name)
    column_types: dict[tuple[str, str], ast.TypeName] = field(default_factory=dict)
    new_nullable_columns: set[tuple[str, str]] = field(default_factory=set)
    defaulted_columns: set[tuple[str, str]] = field(default_factory=set)
    dropped_defaults: set[tuple[str, str]] = field(default_factory=set)
    # Domains with a CHECK or NOT NULL constraint: the database's, and this run's.
    constrained_domains: set[str] = field(default_factory=set)

    def is_existing(self, table: str) -> bool:
        if table in self.created_tables:
            return False
        if table in self.renamed_tables:
            return True
        return self.existing_tables is None or table in self.existing_tables

    def known_type(self, table: str, column: str) -> ast.TypeName | None:
        if (table, column) in self.column_types:
            return self.column_types[(table, column)]
        table = self.renamed_tables.get(table, table)
        if isinstance(self.existing_tables, Mapping) and table not in self.created_tables:
            spelled = self.existing_tables.get(table, {}).get(column)
            return parse_type(spelled) if isinstance(spelled, str) else None
        return None

    def utc(self) -> bool:
        zone = self.transaction.time_zone or self.time_zone
        return zone is not None and zone.lower().removeprefix("etc/") in UTC_ZONES

    def held(self, table: str) -> tuple[str, str] | None:
        """The write-blocking lock the open transaction holds on an existing table, if any."""
        if not self.in_transaction or not self.is_existing(table):
            return None
        return self.transaction.locks.get(table)

    def hold(self, table: str, lock: str | None, source: str) -> None:
        if not self.in_transaction or lock not in BLOCKS_WRITES:
            return
        before = self.transaction.locks.get(table)
        if before is None or LOCK_MODES.index(lock) > LOCK_MODES.index(before[0]):
            self.transaction.locks[table] = (lock, source)


def check(statement: ast.Node, state: SchemaState) -> list[Problem]:
    """The problems `statement` has, given the state before it; then update the state."""
    problems = _settle_renames(statement, state) + _uses_new_enum_value(statement, state)
    handler = _HANDLERS.get(type(statement))
    return problems + (handler(statement, state) if handler is not None else [])


def _uses_new_enum_value(statement: ast.Node, state: SchemaState) -> list[Problem]:
    added = state.transaction.new_enum_values
    if not added or isinstance(statement, ast.AlterEnumStmt | ast.TransactionStmt):
        return []
    if any(literal in added for literal in _string_literals(statement)):
        return [_problem(NEW_ENUM_VALUE_USED)]
    return []


def _string_literals(node: object) -> Iterator[str]:
    """Every string constant in a statement's tree."""
    if isinstance(node, ast.String):
        yield node.sval or ""
    elif isinstance(node, ast.Node):
        for name in getattr(node, "__slots__", ()):  # pglast: the node's fields
            yield from _string_literals(getattr(node, name, None))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from _string_literals(item)


def finish(state: SchemaState) -> list[Problem]:
    """The problems only the end of the run reveals: renames no view made good."""
    pending = state.transaction.broken_names
    state.transaction.broken_names = {}
    return [problem for problems in pending.values() for problem in problems]


def _problem(
    rule: str, table: str | None = None, lock: str | None = None, **details: str
) -> Problem:
    return Problem(rule, MESSAGES[rule].format(**details), table, lock)


def _blocked(lock: str) -> str:
    return "reads and writes" if lock == ACCESS_EXCLUSIVE else "writes"


# Transactions, session settings, renames a view makes good.


def _transaction(statement: ast.TransactionStmt, state: SchemaState) -> list[Problem]:
    kind = statement.kind
    if kind in (TransactionStmtKind.TRANS_STMT_BEGIN, TransactionStmtKind.TRANS_STMT_START):
        state.in_transaction = True
        state.transaction = Transaction()
        return []
    if kind in (TransactionStmtKind.TRANS_STMT_COMMIT, TransactionStmtKind.TRANS_STMT_PREPARE):
        problems = finish(state)
    elif kind == TransactionStmtKind.TRANS_STMT_ROLLBACK:
        problems = []
    else:  # savepoints keep the transaction open
        return []
    state.in_transaction = False
    state.transaction = Transaction()
    return problems


def _settle_renames(statement: ast.Node, state: SchemaState) -> list[Problem]:
    """A view under a renamed table's old name makes the rename good; outside a transaction
    block it must be the very next statement (one round trip, as a multi-statement query)."""
    pending = state.transaction.broken_names
    if not pending:
        return []
    if isinstance(statement, ast.ViewStmt):
        pending.pop(_table(statement.view), None)
    return [] if state.in_transaction else finish(state)


def _break_name(state: SchemaState, name: str, problem: Problem, source: ast.Node) -> None:
    state.transaction.broken_names.setdefault(name, []).append(replace(problem, source=source))


def _set_variable(statement: ast.VariableSetStmt, state: SchemaState) -> list[Problem]:
    if statement.kind == VariableSetKind.VAR_RESET_ALL:
        state.time_zone = None
    if (statement.name or "").lower() != "timezone":
        return []
    value = None
    if statement.kind == VariableSetKind.VAR_SET_VALUE and statement.args:
        argument = statement.args[0]
        constant = argument.val if isinstance(argument, ast.A_Const) else None
        if isinstance(constant, ast.String):
            value = constant.sval
        elif isinstance(constant, ast.Integer):  # hours east of UTC
            value = "UTC" if not constant.ival else str(constant.ival)
    if statement.is_local:  # outside a transaction block SET LOCAL has no effect
        if state.in_transaction:
            state.transaction.time_zone = value
    else:
        state.time_zone = value
    return []


# Objects the run creates: no reader, nothing to lock out.


def _create_table(statement: ast.CreateStmt, state: SchemaState) -> list[Problem]:
    table = _table(statement.relation)
    state.created_tables.add(table)
    for element in statement.tableElts or ():
        if isinstance(element, ast.ColumnDef) and element.typeName is not None:
            state.column_types[(table, element.colname or "")] = element.typeName
    return []


def _create_table_as(statement: ast.CreateTableAsStmt, state: SchemaState) -> list[Problem]:
    if statement.into is not None:
        state.created_tables.add(_table(statement.into.rel))
    return []


def _create_view(statement: ast.ViewStmt, state: SchemaState) -> list[Problem]:
    state.created_tables.add(_table(statement.view))
    return []


def _create_domain(statement: ast.CreateDomainStmt, state: SchemaState) -> list[Problem]:
    name = _last(statement.domainname)
    state.created_objects.add(("domain", name))
    if any(
        isinstance(c, ast.Constraint)
        and c.contype in (ConstrType.CONSTR_CHECK, ConstrType.CONSTR_NOTNULL)
        for c in statement.constraints or ()
    ):
        state.constrained_domains.add(name)
    return []


def _create_enum(statement: ast.CreateEnumStmt, state: SchemaState) -> list[Problem]:
    state.created_objects.add(("type", _last(statement.typeName)))
    return []


def _create_schema(statement: ast.CreateSchemaStmt, state: SchemaState) -> list[Problem]:
    state.created_objects.add(("schema", statement.schemaname or ""))
    return []


def _create_index(statement: ast.IndexStmt, state: SchemaState) -> list[Problem]:
    table = _table(statement.relation)
    if statement.idxname:
        state.created_objects.add(("index", statement.idxname))
    if statement.concurrent:
        if statement.idxname:
            state.concurrent_indexes.add(statement.idxname)
        if state.in_transaction:
            return [
                _problem(
                    CONCURRENTLY_IN_TRANSACTION, _shown(statement.relation), what="CREATE INDEX"
                )
            ]
        return []
    state.hold(table, SHARE, "CREATE INDEX")
    if state.is_existing(table):
        return [_problem(CREATE_INDEX, _shown(statement.relation), SHARE)]
    return []


def _create_trigger(statement: ast.CreateTrigStmt, state: SchemaState) -> list[Problem]:
    state.hold(_table(statement.relation), SHARE_ROW_EXCLUSIVE, "CREATE TRIGGER")
    return []


# ALTER TABLE and its subcommands.


def _alter_table(statement: ast.AlterTableStmt, state: SchemaState) -> list[Problem]:
    table, shown = _table(statement.relation), _shown(statement.relation)
    lock = _alter_table_lock(statement)
    if statement.objtype == ObjectType.OBJECT_INDEX:
        existing = ("index", table) not in state.created_objects
    else:
        existing = state.is_existing(table)
    problems: list[Problem] = []
    for command in statement.cmds or ():
        if isinstance(command, ast.AlterTableCmd):
            problems += _alter_table_command(table, command, state, existing=existing)
    state.hold(table, lock, "ALTER TABLE")
    for command in statement.cmds or ():
        referenced = _referenced_table(command)
        if referenced is not None:
            state.hold(referenced, SHARE_ROW_EXCLUSIVE, "ALTER TABLE ... REFERENCES")
    return [replace(p, table=shown, lock=lock) if p.table is None else p for p in problems]


def _alter_table_lock(statement: ast.AlterTableStmt) -> str:
    strongest = 0
    for command in statement.cmds or ():
        if not isinstance(command, ast.AlterTableCmd):
            continue
        definition = command.def_
        if command.subtype is None:
            lock = ACCESS_EXCLUSIVE
        else:
            lock = _SUBCOMMAND_LOCKS.get(command.subtype, ACCESS_EXCLUSIVE)
        if isinstance(definition, ast.Constraint):
            if definition.contype == ConstrType.CONSTR_FOREIGN:
                lock = SHARE_ROW_EXCLUSIVE
        elif isinstance(definition, ast.PartitionCmd) and definition.concurrent:
            lock = SHARE_UPDATE_EXCLUSIVE
        strongest = max(strongest, LOCK_MODES.index(lock))
    return LOCK_MODES[strongest]


def _alter_table_command(
    table: str, command: ast.AlterTableCmd, state: SchemaState, *, existing: bool
) -> list[Problem]:
    subtype = command.subtype
    name = command.name or ""
    definition = command.def_
    if subtype == AlterTableType.AT_AddColumn and isinstance(definition, ast.ColumnDef):
        return _add_column(table, definition, state, existing=existing)
    if subtype == AlterTableType.AT_AlterColumnType and isinstance(definition, ast.ColumnDef):
        problems = _alter_type(table, name, definition, state) if existing else []
        if definition.typeName is not None:
            state.column_types[(table, name)] = definition.typeName
        return problems
    if subtype == AlterTableType.AT_ColumnDefault:
        return _column_default(table, name, definition, state, existing=existing)
    if subtype == AlterTableType.AT_SetNotNull:
        return _set_not_null(table, name, state, existing=existing)
    if subtype == AlterTableType.AT_AddConstraint and isinstance(definition, ast.Constraint):
        return _add_constraint(table, definition, state, existing=existing)
    if subtype == AlterTableType.AT_ValidateConstraint:
        return _validate(table, name, state)
    if not existing:
        return []
    if subtype == AlterTableType.AT_DropColumn:
        return [_problem(DROP_COLUMN, what="drop the column")]
    if subtype == AlterTableType.AT_SetTableSpace:
        return [_problem(SET_TABLESPACE)]
    if subtype in (AlterTableType.AT_SetLogged, AlterTableType.AT_SetUnLogged):
        return [_problem(SET_LOGGED)]
    return []


def _add_column(
    table: str, column: ast.ColumnDef, state: SchemaState, *, existing: bool
) -> list[Problem]:
    key = (table, column.colname or "")
    if column.typeName is not None:
        state.column_types[key] = column.typeName
    kinds = {c.contype for c in column.constraints or () if isinstance(c, ast.Constraint)}
    serial = column.typeName is not None and type_name_of(column.typeName) in SERIAL_TYPES
    filled = serial or bool(
        kinds & {ConstrType.CONSTR_DEFAULT, ConstrType.CONSTR_IDENTITY, ConstrType.CONSTR_GENERATED}
    )
    not_null = bool(kinds & {ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_PRIMARY})
    if ConstrType.CONSTR_DEFAULT in kinds:
        state.defaulted_columns.add(key)
    if not not_null:
        state.new_nullable_columns.add(key)
    if not existing:
        return []
    problems: list[Problem] = []
    if serial:
        problems.append(_problem(VOLATILE_DEFAULT, what="a serial column (a nextval() default)"))
    if not_null and not filled:
        problems.append(_problem(REQUIRED_COLUMN))
    if column.typeName is not None and type_name_of(column.typeName) == "json":
        problems.append(_problem(JSON_COLUMN))
    if column.typeName is not None and _last(column.typeName.names) in state.constrained_domains:
        problems.append(_problem(DOMAIN_COLUMN, lock=ACCESS_EXCLUSIVE))
    for constraint in column.constraints or ():
        if isinstance(constraint, ast.Constraint):
            problems += _column_constraint(constraint, filled=filled)
    return problems


def _column_constraint(constraint: ast.Constraint, *, filled: bool) -> list[Problem]:
    kind = constraint.contype
    if kind == ConstrType.CONSTR_DEFAULT and not non_volatile(constraint.raw_expr):
        what = "a default that may be volatile (a function PostgreSQL evaluates per row)"
        return [_problem(VOLATILE_DEFAULT, what=what)]
    if kind == ConstrType.CONSTR_GENERATED:
        return [_problem(VOLATILE_DEFAULT, what="a stored generated column")]
    if kind == ConstrType.CONSTR_IDENTITY:
        return [_problem(VOLATILE_DEFAULT, what="an identity column")]
    # A new column is NULL in every row: PostgreSQL skips validating its foreign key (only a
    # brief SHARE ROW EXCLUSIVE lock on the referenced table), unless a default fills it. A
    # CHECK is still checked against every row.
    if kind == ConstrType.CONSTR_CHECK or (kind == ConstrType.CONSTR_FOREIGN and filled):
        return [_problem(NOT_VALID, kind=_constraint_kind(kind))]
    if kind in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY):
        return [_problem(UNIQUE_CONSTRAINT, kind=_constraint_kind(kind))]
    return []


def _column_default(
    table: str, column: str, default: object, state: SchemaState, *, existing: bool
) -> list[Problem]:
    key = (table, column)
    if default is not None:
        state.defaulted_columns.add(key)
        state.dropped_defaults.discard(key)
        return []
    given = key in state.defaulted_columns
    state.defaulted_columns.discard(key)
    if given:
        state.dropped_defaults.add(key)
    # A column this run added nullable stays nullable; any other is taken as NOT NULL (the
    # catalog's nullability is not read).
    if existing and given and key not in state.new_nullable_columns:
        return [_problem(DROPPED_DEFAULT)]
    return []


def _set_not_null(table: str, column: str, state: SchemaState, *, existing: bool) -> list[Problem]:
    key = (table, column)
    state.new_nullable_columns.discard(key)
    if not existing:
        return []
    problems = [_problem(DROPPED_DEFAULT)] if key in state.dropped_defaults else []
    checked = key in state.validated_not_null or any(
        validated == table and _names_column(name, column)
        for validated, name in state.validated_elsewhere
    )
    return problems if checked else [*problems, _problem(SET_NOT_NULL)]


def _add_constraint(
    table: str, constraint: ast.Constraint, state: SchemaState, *, existing: bool
) -> list[Problem]:
    kind = constraint.contype
    if constraint.conname:
        state.added_constraints[constraint.conname] = table
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
    elif kind == ConstrType.CONSTR_EXCLUSION:
        return [_problem(EXCLUSION_CONSTRAINT)]
    elif kind in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY) and not (
        constraint.indexname
    ):
        # USING INDEX attaches an index that exists already: a non-concurrent build of it in
        # the pending SQL is reported by create-index-not-concurrently.
        return [_problem(UNIQUE_CONSTRAINT, kind=_constraint_kind(kind))]
    return []


def _validate(table: str, name: str, state: SchemaState) -> list[Problem]:
    checked = state.not_valid_checks.pop(name, None)
    if checked is not None and checked[0] == table:
        state.validated_not_null.add(checked)
    elif state.added_constraints.get(name) != table:
        state.validated_elsewhere.add((table, name))
    held = state.held(table)
    if held is None:
        return []
    lock, source = held
    return [_problem(VALIDATE_UNDER_LOCK, held=lock, source=source, blocked=_blocked(lock))]


def _alter_type(
    table: str, column: str, definition: ast.ColumnDef, state: SchemaState
) -> list[Problem]:
    new = definition.typeName
    if definition.collClause is not None:
        return [_problem(COLUMN_TYPE, why="with COLLATE rebuilds every index on the column")]
    using = definition.raw_default
    if using is not None and (new is None or not reads_column(using, column, new)):
        return [_problem(COLUMN_TYPE, why="with USING rewrites the table")]
    old = state.known_type(table, column)
    if old is None or new is None:
        return [_problem(COLUMN_TYPE, why="from a type not known here may rewrite the table")]
    if in_place(old, new, utc=state.utc()):
        return []
    return [_problem(COLUMN_TYPE, why=f"from {spell(old)} to {spell(new)} rewrites the table")]


# Renames and drops.


def _rename(statement: ast.RenameStmt, state: SchemaState) -> list[Problem]:
    kind = statement.renameType
    if kind == ObjectType.OBJECT_SCHEMA:
        if ("schema", statement.subname or "") in state.created_objects:
            return []
        return [_problem(RENAME_SCHEMA)]
    table, shown = _table(statement.relation), _shown(statement.relation)
    if kind in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_VIEW, ObjectType.OBJECT_MATVIEW):
        new = statement.newname or ""
        if not state.is_existing(table):
            state.created_tables.discard(table)
            state.created_tables.add(new)
            return []
        state.renamed_tables[new] = state.renamed_tables.pop(table, table)
        state.hold(new, ACCESS_EXCLUSIVE, "ALTER TABLE ... RENAME")
        _break_name(state, table, _problem(RENAME_TABLE, shown, ACCESS_EXCLUSIVE), statement)
    elif kind == ObjectType.OBJECT_COLUMN and state.is_existing(table):
        problem = _problem(RENAME_COLUMN, shown, ACCESS_EXCLUSIVE)
        if not state.in_transaction:  # a view can take the table's name only once it moves
            return [problem]
        state.hold(table, ACCESS_EXCLUSIVE, "ALTER TABLE ... RENAME COLUMN")
        _break_name(state, table, problem, statement)
    return []


def _drop(statement: ast.DropStmt, state: SchemaState) -> list[Problem]:
    if statement.concurrent and state.in_transaction:
        return [_problem(CONCURRENTLY_IN_TRANSACTION, what="DROP INDEX")]
    if statement.removeType == ObjectType.OBJECT_SCHEMA:
        if statement.behavior != DropBehavior.DROP_CASCADE:
            return []
        schemas = [
            _last(name) if isinstance(name, tuple) else getattr(name, "sval", "") or ""
            for name in statement.objects or ()
        ]
        if all(("schema", schema) in state.created_objects for schema in schemas):
            return []
        return [_problem(DROP_SCHEMA_CASCADE)]
    if statement.removeType != ObjectType.OBJECT_TABLE:
        return []
    problems: list[Problem] = []
    for name in statement.objects or ():
        names = tuple(part.sval or "" for part in name if isinstance(part, ast.String))
        if names and state.is_existing(names[-1]):
            problems.append(
                _problem(DROP_TABLE, ".".join(names), ACCESS_EXCLUSIVE, what="drop the table")
            )
        state.created_tables.discard(names[-1] if names else "")
    return problems


# Commands that rewrite, rebuild or empty a table, and the data statements of a backfill.


def _reindex(statement: ast.ReindexStmt, state: SchemaState) -> list[Problem]:
    concurrent = any(p.defname == "concurrently" for p in statement.params or ())
    table = _table(statement.relation)
    if concurrent:
        if state.in_transaction:
            return [_problem(CONCURRENTLY_IN_TRANSACTION, what="REINDEX")]
        return []
    if statement.kind == ReindexObjectType.REINDEX_OBJECT_TABLE:
        state.hold(table, SHARE, "REINDEX")
        if not state.is_existing(table):
            return []
        return [_problem(REINDEX, _shown(statement.relation), SHARE)]
    if statement.kind == ReindexObjectType.REINDEX_OBJECT_INDEX and ("index", table) in (
        state.created_objects
    ):
        return []
    return [_problem(REINDEX, lock=SHARE)]


def _truncate(statement: ast.TruncateStmt, state: SchemaState) -> list[Problem]:
    cascade = statement.behavior == DropBehavior.DROP_CASCADE
    problems: list[Problem] = []
    for relation in statement.relations or ():
        if not isinstance(relation, ast.RangeVar):
            continue
        table = _table(relation)
        state.hold(table, ACCESS_EXCLUSIVE, "TRUNCATE")
        if cascade:
            problems.append(_problem(TRUNCATE_CASCADE, _shown(relation), ACCESS_EXCLUSIVE))
        elif state.is_existing(table):
            problems.append(_problem(TRUNCATE, _shown(relation), ACCESS_EXCLUSIVE))
    return problems


def _vacuum(statement: ast.VacuumStmt, state: SchemaState) -> list[Problem]:
    full = any(
        isinstance(option, ast.DefElem) and option.defname == "full" and _option_on(option.arg)
        for option in statement.options or ()
    )
    if not statement.is_vacuumcmd or not full:
        return []
    relations = [
        r.relation for r in statement.rels or () if isinstance(r, ast.VacuumRelation) and r.relation
    ]
    if not relations:
        return [_problem(VACUUM_FULL, lock=ACCESS_EXCLUSIVE)]
    return [
        _problem(VACUUM_FULL, _shown(relation), ACCESS_EXCLUSIVE)
        for relation in relations
        if state.is_existing(_table(relation))
    ]


def _cluster(statement: ast.ClusterStmt, state: SchemaState) -> list[Problem]:
    relation = statement.relation
    if relation is None:
        return [_problem(CLUSTER, lock=ACCESS_EXCLUSIVE)]
    state.hold(_table(relation), ACCESS_EXCLUSIVE, "CLUSTER")
    if not state.is_existing(_table(relation)):
        return []
    return [_problem(CLUSTER, _shown(relation), ACCESS_EXCLUSIVE)]


def _refresh(statement: ast.RefreshMatViewStmt, state: SchemaState) -> list[Problem]:
    view = _table(statement.relation)
    lock = EXCLUSIVE if statement.concurrent else ACCESS_EXCLUSIVE
    state.hold(view, lock, "REFRESH MATERIALIZED VIEW")
    # Materialized views are not among the tables read from the catalog: one this run did not
    # create exists.
    if statement.concurrent or view in state.created_tables:
        return []
    return [_problem(REFRESH, _shown(statement.relation), ACCESS_EXCLUSIVE)]


def _lock(statement: ast.LockStmt, state: SchemaState) -> list[Problem]:
    mode = LOCK_MODES[(statement.mode or len(LOCK_MODES)) - 1]
    for relation in statement.relations or ():
        if isinstance(relation, ast.RangeVar):
            state.hold(_table(relation), mode, "LOCK TABLE")
    return []


def _update(statement: ast.UpdateStmt, state: SchemaState) -> list[Problem]:
    whole = not picks_batch(statement.whereClause, statement.fromClause or (), statement.withClause)
    return _backfill("UPDATE", statement.relation, state) if whole else []


def _delete(statement: ast.DeleteStmt, state: SchemaState) -> list[Problem]:
    whole = not picks_batch(
        statement.whereClause, statement.usingClause or (), statement.withClause
    )
    return _backfill("DELETE", statement.relation, state) if whole else []


def _backfill(what: str, relation: ast.RangeVar | None, state: SchemaState) -> list[Problem]:
    held = state.held(_table(relation))
    if held is None:
        return []
    lock, source = held
    return [
        _problem(
            BACKFILL_UNDER_LOCK,
            _shown(relation),
            ROW_EXCLUSIVE,
            what=what,
            held=lock,
            source=source,
            blocked=_blocked(lock),
        )
    ]


# Types, domains, databases.


def _alter_domain(statement: ast.AlterDomainStmt, state: SchemaState) -> list[Problem]:
    if ("domain", _last(statement.typeName)) in state.created_objects:
        return []
    constraint = statement.def_
    if statement.subtype == "C" and isinstance(constraint, ast.Constraint):
        if constraint.skip_validation:
            return []  # NOT VALID: new values only, no scan, no lock on the tables
        what = "ALTER DOMAIN ... ADD CONSTRAINT"
    elif statement.subtype == "O":
        what = "ALTER DOMAIN ... SET NOT NULL"
    elif statement.subtype == "V":  # unlike a table's, a domain's validation blocks writes
        what = "ALTER DOMAIN ... VALIDATE CONSTRAINT"
    else:
        return []
    return [_problem(DOMAIN_SCAN, lock=SHARE, what=what)]


def _alter_enum(statement: ast.AlterEnumStmt, state: SchemaState) -> list[Problem]:
    if statement.oldVal is None and statement.newVal and state.in_transaction:
        state.transaction.new_enum_values.add(statement.newVal)
    if statement.oldVal is None or ("type", _last(statement.typeName)) in state.created_objects:
        return []
    return [_problem(RENAME_ENUM_VALUE)]


def _set_schema(statement: ast.AlterObjectSchemaStmt, state: SchemaState) -> list[Problem]:
    moved = (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_VIEW, ObjectType.OBJECT_MATVIEW)
    if statement.objectType not in moved or statement.relation is None:
        return []
    table = _table(statement.relation)
    if not state.is_existing(table):
        return []
    state.hold(table, ACCESS_EXCLUSIVE, "ALTER TABLE ... SET SCHEMA")
    return [_problem(SET_SCHEMA, _shown(statement.relation), ACCESS_EXCLUSIVE)]


def _do_block(statement: ast.DoStmt, state: SchemaState) -> list[Problem]:
    """The SQL statements a PL/pgSQL DO block runs, judged as if they ran one by one (a string
    EXECUTE runs is judged too; one built at run time cannot be)."""
    language = body = None
    for option in statement.args or ():
        if isinstance(option, ast.DefElem) and isinstance(option.arg, ast.String):
            if option.defname == "as":
                body = option.arg.sval
            elif option.defname == "language":
                language = option.arg.sval
    if body is None or (language or "plpgsql").lower() != "plpgsql":
        return []
    problems: list[Problem] = []
    for query in _plpgsql_queries(body):
        try:
            inner = parse_sql(query)
        except ParseError:
            continue
        for raw in inner:
            if raw.stmt is not None:
                problems += check(raw.stmt, state)
    return problems


def _plpgsql_queries(body: str) -> list[str]:
    """The SQL a PL/pgSQL body runs: its plain statements and its EXECUTEs of a constant."""
    import json

    from pglast.parser import parse_plpgsql_json

    function = f"CREATE FUNCTION pg_temp.do_block() RETURNS void LANGUAGE plpgsql AS $do${body}$do$"
    try:
        tree = json.loads(parse_plpgsql_json(function))
    except (ParseError, ValueError):
        return []
    queries: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "PLpgSQL_stmt_execsql":
                    queries.append(value["sqlstmt"]["PLpgSQL_expr"]["query"])
                elif key == "PLpgSQL_stmt_dynexecute":
                    text = value["query"]["PLpgSQL_expr"]["query"].strip()
                    if len(text) > 1 and text[0] == text[-1] == "'":
                        queries.append(text[1:-1].replace("''", "'"))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(tree)
    return queries


def _drop_database(statement: ast.DropdbStmt, state: SchemaState) -> list[Problem]:
    return [_problem(DROP_DATABASE)]


def _move_tablespace(statement: ast.AlterTableMoveAllStmt, state: SchemaState) -> list[Problem]:
    return [_problem(SET_TABLESPACE, lock=ACCESS_EXCLUSIVE)]


_HANDLERS: dict[type[ast.Node], Callable[[Any, SchemaState], list[Problem]]] = {
    ast.TransactionStmt: _transaction,
    ast.VariableSetStmt: _set_variable,
    ast.CreateStmt: _create_table,
    ast.CreateTableAsStmt: _create_table_as,
    ast.ViewStmt: _create_view,
    ast.CreateDomainStmt: _create_domain,
    ast.CreateEnumStmt: _create_enum,
    ast.CreateSchemaStmt: _create_schema,
    ast.IndexStmt: _create_index,
    ast.CreateTrigStmt: _create_trigger,
    ast.AlterTableStmt: _alter_table,
    ast.RenameStmt: _rename,
    ast.DropStmt: _drop,
    ast.ReindexStmt: _reindex,
    ast.TruncateStmt: _truncate,
    ast.VacuumStmt: _vacuum,
    ast.ClusterStmt: _cluster,
    ast.RefreshMatViewStmt: _refresh,
    ast.LockStmt: _lock,
    ast.UpdateStmt: _update,
    ast.DeleteStmt: _delete,
    ast.AlterDomainStmt: _alter_domain,
    ast.AlterEnumStmt: _alter_enum,
    ast.DropdbStmt: _drop_database,
    ast.AlterTableMoveAllStmt: _move_tablespace,
    ast.AlterObjectSchemaStmt: _set_schema,
    ast.DoStmt: _do_block,
}


# Reading names and expressions.


def _table(relation: ast.RangeVar | None) -> str:
    """A table's name without its schema (pending SQL runs with search_path set)."""
    return relation.relname or "" if relation is not None else ""


def _shown(relation: ast.RangeVar | None) -> str | None:
    """A table's name as the statement spells it: schema-qualified when it says so."""
    if relation is None:
        return None
    return ".".join(part for part in (relation.schemaname, relation.relname) if part)


def _last(names: tuple[ast.Node, ...] | None) -> str:
    last = names[-1] if names else None
    return last.sval or "" if isinstance(last, ast.String) else ""


def _referenced_table(command: ast.Node) -> str | None:
    """The table a foreign key added by this subcommand references (it locks it too)."""
    if not isinstance(command, ast.AlterTableCmd):
        return None
    definition = command.def_
    constraints = (
        definition.constraints or ()
        if isinstance(definition, ast.ColumnDef)
        else (definition,)
        if isinstance(definition, ast.Constraint)
        else ()
    )
    for constraint in constraints:
        if (
            isinstance(constraint, ast.Constraint)
            and constraint.contype == ConstrType.CONSTR_FOREIGN
        ):
            return _table(constraint.pktable)
    return None


def _option_on(value: object) -> bool:
    """A boolean option (VACUUM (FULL false)): no value means on."""
    if isinstance(value, ast.String):
        return (value.sval or "").lower() not in ("false", "off", "0", "no")
    if isinstance(value, ast.Integer):
        return bool(value.ival)
    return True


def _constraint_kind(kind: ConstrType) -> str:
    return {
        ConstrType.CONSTR_FOREIGN: "FOREIGN KEY",
        ConstrType.CONSTR_CHECK: "CHECK",
        ConstrType.CONSTR_UNIQUE: "UNIQUE",
        ConstrType.CONSTR_PRIMARY: "PRIMARY KEY",
    }[kind]


def _names_column(constraint: str, column: str) -> bool:
    """A constraint an earlier run added is taken for the column its name spells out
    (`users_age_not_null` for `age`): its expression is not read from the catalog."""
    words, wanted = constraint.lower().split("_"), column.lower().split("_")
    return any(words[i : i + len(wanted)] == wanted for i in range(len(words)))


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
