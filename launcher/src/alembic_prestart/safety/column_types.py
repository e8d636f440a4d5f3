"""What the migration-safety rules need to know of expressions and types: whether a default is
volatile, whether a type change is one PostgreSQL makes without rewriting the table, and whether
an UPDATE's or DELETE's WHERE picks a batch of rows rather than the whole table."""

from __future__ import annotations

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType
from pglast.parser import ParseError

# Functions PostgreSQL marks stable or immutable (pg_proc.provolatile <> 'v'): a default calling
# only these is evaluated once, so since PostgreSQL 11 ADD COLUMN stores it without a rewrite.
# Any other function is taken as volatile: the rule errs on the side of flagging.
NON_VOLATILE_FUNCTIONS = frozenset(
    {
        "now",
        "transaction_timestamp",
        "statement_timestamp",
        "current_setting",
        "to_timestamp",
        "to_date",
        "to_char",
        "timezone",
        "date_trunc",
        "make_date",
        "make_interval",
        "lower",
        "upper",
        "length",
        "concat",
        "jsonb_build_object",
        "jsonb_build_array",
        "json_build_object",
        "json_build_array",
        "array_fill",
    }
)
NO_ARGUMENT_FUNCTIONS = frozenset({"now", "transaction_timestamp", "statement_timestamp"})
SERIAL_TYPES = frozenset({"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"})


def non_volatile(expression: object) -> bool:
    """True when the expression is known to be constant, stable or immutable."""
    if isinstance(expression, tuple):  # an operand list, as in `x IN (1, 2)`
        return all(non_volatile(item) for item in expression)
    if isinstance(expression, ast.A_Const | ast.SQLValueFunction):
        return True
    if isinstance(expression, ast.TypeCast):
        return non_volatile(expression.arg)
    if isinstance(expression, ast.A_Expr):
        operands = [expression.lexpr, expression.rexpr]
        return all(o is None or non_volatile(o) for o in operands)
    if isinstance(expression, ast.A_ArrayExpr):
        return all(non_volatile(e) for e in expression.elements or ())
    if isinstance(expression, ast.FuncCall) and expression.funcname:
        name = expression.funcname[-1]
        if not isinstance(name, ast.String) or name.sval not in NON_VOLATILE_FUNCTIONS:
            return False
        if expression.args and name.sval in NO_ARGUMENT_FUNCTIONS:
            return False  # now(1) names no built-in function
        return all(non_volatile(a) for a in expression.args or ())
    return False


def type_name_of(type_name: ast.TypeName) -> str:
    last = type_name.names[-1] if type_name.names else None
    return last.sval or "" if isinstance(last, ast.String) else ""


def modifiers(type_name: ast.TypeName) -> tuple[int, ...] | None:
    """The integer type modifiers (varchar's length, numeric's precision and scale); None if
    some modifier is not a plain integer."""
    values: list[int] = []
    for modifier in type_name.typmods or ():
        if not (isinstance(modifier, ast.A_Const) and isinstance(modifier.val, ast.Integer)):
            return None
        values.append(modifier.val.ival or 0)
    return tuple(values)


def in_place(old: ast.TypeName, new: ast.TypeName, *, utc: bool) -> bool:
    """True when PostgreSQL 15 changes a column from `old` to `new` without rewriting the table:
    a binary-coercible cast (pg_cast.castmethod 'b') and, when `new` has a modifier, one its
    length-coercion support function proves cannot fail. `utc`: the session TimeZone has no
    offset, so timestamp and timestamptz share their stored values (PostgreSQL 12+). Each
    pair was checked against PostgreSQL 15 (pg_class.relfilenode before and after)."""
    if old.arrayBounds or new.arrayBounds:
        return False
    before, after = type_name_of(old), type_name_of(new)
    old_mods, new_mods = modifiers(old), modifiers(new)
    if old_mods is None or new_mods is None:
        return False
    if before == after:
        return _wider_or_equal(after, old_mods, new_mods)
    if (before, after) in _TIME_ZONE_PAIRS:
        return utc and _wider_or_equal("timestamp", old_mods, new_mods)
    if (before, after) in BINARY_COERCIBLE:
        return not new_mods  # a new limit is a length coercion that checks every row
    return False


# Binary-coercible casts of PostgreSQL 15 between types a migration uses (pg_cast with
# castmethod 'b', and the casts the citext extension declares WITHOUT FUNCTION).
BINARY_COERCIBLE = frozenset(
    {
        ("varchar", "text"),
        ("text", "varchar"),
        ("varchar", "bpchar"),
        ("text", "bpchar"),
        ("xml", "text"),
        ("xml", "varchar"),
        ("cidr", "inet"),
        ("bit", "varbit"),
        ("int4", "oid"),
        ("oid", "int4"),
        ("citext", "text"),
        ("text", "citext"),
        ("varchar", "citext"),
    }
)
_TIME_ZONE_PAIRS = frozenset({("timestamp", "timestamptz"), ("timestamptz", "timestamp")})
# Without a modifier these types have no limit (varchar, varbit, numeric, bpchar) or the
# maximum precision (the time types); `char` and `bit` alone mean char(1) and bit(1).
_NO_LIMIT_WITHOUT_MODIFIER = frozenset(
    {"varchar", "varbit", "numeric", "bpchar", "timestamp", "timestamptz", "time", "timetz"}
    | {"interval"}
)
_PRECISION_TYPES = frozenset({"timestamp", "timestamptz", "time", "timetz"})
_MAX_PRECISION = 6
_INTERVAL_FULL_RANGE = 32767  # interval's first modifier when no fields (YEAR, DAY ...) limit it


def _scale(numeric: tuple[int, ...]) -> int:
    return numeric[1] if len(numeric) > 1 else 0


def _wider_or_equal(kind: str, old: tuple[int, ...], new: tuple[int, ...]) -> bool:
    """True when every value of `kind` with modifier `old` fits `new` unchanged: the support
    functions (varchar_support, numeric_support, timestamp_support, ...) then drop the length
    coercion. bpchar and bit have no support function: any new limit rewrites."""
    if old == new:
        return True
    if not new:
        return kind in _NO_LIMIT_WITHOUT_MODIFIER
    if kind in ("varchar", "varbit"):
        return bool(old) and new[0] >= old[0]
    if kind == "numeric":  # numeric(p) is numeric(p, 0); the scale must stay
        return bool(old) and _scale(new) == _scale(old) and new[0] >= old[0]
    if kind in _PRECISION_TYPES:
        return new[0] >= (old or (_MAX_PRECISION,))[0]
    if kind == "interval":  # (range, precision); a range limited to some fields is not judged
        before = old or (_INTERVAL_FULL_RANGE, _MAX_PRECISION)
        return (
            len(new) == len(before) == 2
            and new[0] == before[0] == _INTERVAL_FULL_RANGE
            and (new[1] >= before[1])
        )
    return False


def parse_type(spelled: str) -> ast.TypeName | None:
    """A type as PostgreSQL's format_type() spells it, parsed by PostgreSQL's grammar."""
    try:
        statement = parse_sql(f"SELECT NULL::{spelled}")[0].stmt
    except (ParseError, IndexError):
        return None
    if not isinstance(statement, ast.SelectStmt) or not statement.targetList:
        return None
    target = statement.targetList[0]
    cast = target.val if isinstance(target, ast.ResTarget) else None
    return cast.typeName if isinstance(cast, ast.TypeCast) else None


def spell(type_name: ast.TypeName) -> str:
    mods = modifiers(type_name) or ()
    return type_name_of(type_name) + (f"({','.join(map(str, mods))})" if mods else "")


def same_type(one: ast.TypeName, other: ast.TypeName) -> bool:
    return (
        type_name_of(one) == type_name_of(other)
        and modifiers(one) == modifiers(other)
        and bool(one.arrayBounds) == bool(other.arrayBounds)
    )


def reads_column(expression: ast.Node | None, column: str, new: ast.TypeName) -> bool:
    """True when a USING expression is the column itself or its cast to the new type: then
    PostgreSQL coerces exactly as it does without USING (a relabel needs no rewrite)."""
    if isinstance(expression, ast.TypeCast) and expression.typeName is not None:
        return same_type(expression.typeName, new) and _column_name(expression.arg) == column
    return _column_name(expression) == column


# The batch heuristic. An UPDATE or DELETE touches a batch, not the whole table, when its WHERE
# (or a query it reads) bounds the rows: a LIMIT-ed subquery or CTE (`id IN (SELECT id ... LIMIT
# 1000)`, `ctid = ANY(ARRAY(SELECT ... LIMIT n))`, `FROM (SELECT ... LIMIT n) AS s`), or a key
# column compared to constants: `id = 5`, `id IN (1, 2)`, `id = ANY($1)`, `id BETWEEN a AND b`,
# or an upper bound (`id < 10000`, with or without a lower one: keys grow from the first
# batch). Any other condition (`col IS NULL`, `status = 'new'`, an open-ended `id > 1000`, a join
# to an unbounded table) may match every row, so it counts as the whole table. A key column is
# `id`, `ctid`, `pk` or a name ending in `_id`: the catalog's primary keys are not read, so the
# name is the evidence at hand. Conditions joined by AND bound the rows if any one does; joined
# by OR, only if each does.
KEY_COLUMNS = frozenset({"id", "ctid", "pk"})
_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "="}


def picks_batch(
    where: ast.Node | None,
    from_clause: tuple[ast.Node, ...] = (),
    with_clause: ast.WithClause | None = None,
) -> bool:
    """True when an UPDATE's or DELETE's WHERE (with its FROM/USING and WITH) bounds it to a
    batch of rows."""
    ctes = with_clause.ctes or () if with_clause is not None else ()
    queries = [cte.ctequery for cte in ctes if isinstance(cte, ast.CommonTableExpr)]
    if any(_limited(item) for item in (*from_clause, *queries)):
        return True
    return where is not None and _bounds(where)


def _bounds(condition: ast.Node) -> bool:
    if isinstance(condition, ast.BoolExpr):
        arguments = condition.args or ()
        if condition.boolop == BoolExprType.AND_EXPR:
            return any(_bounds(a) for a in arguments)
        if condition.boolop == BoolExprType.OR_EXPR:
            return bool(arguments) and all(_bounds(a) for a in arguments)
        return False
    if isinstance(condition, ast.SubLink):
        return _limited(condition)
    if not isinstance(condition, ast.A_Expr):
        return False
    operator = _operator(condition)
    if condition.kind == A_Expr_Kind.AEXPR_OP_ANY and operator == "=":
        values = condition.rexpr
        if isinstance(values, ast.SubLink):
            return _limited(values)
        return _is_key(condition.lexpr) and _constant(values)
    if condition.kind in (A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_BETWEEN):
        return (
            operator in ("=", "BETWEEN")
            and _is_key(condition.lexpr)
            and (_constant(condition.rexpr))
        )
    if condition.kind == A_Expr_Kind.AEXPR_OP:
        key: object = condition.lexpr
        value: object = condition.rexpr
        if _constant(key):  # `10000 > id` reads as `id < 10000`
            key, value, operator = value, key, _MIRRORED.get(operator, "")
        return operator in ("=", "<", "<=") and _is_key(key) and _constant(value)
    return False


def _limited(node: object) -> bool:
    """A query (a subquery, a FROM item, a CTE) that returns at most LIMIT rows."""
    if isinstance(node, ast.SubLink):
        node = node.subselect
    elif isinstance(node, ast.RangeSubselect):
        node = node.subquery
    return isinstance(node, ast.SelectStmt) and node.limitCount is not None


def _operator(expression: ast.A_Expr) -> str:
    name = expression.name[-1] if expression.name else None
    return name.sval or "" if isinstance(name, ast.String) else ""


def _column_name(expression: object) -> str | None:
    if not isinstance(expression, ast.ColumnRef) or not expression.fields:
        return None
    last = expression.fields[-1]
    return last.sval if isinstance(last, ast.String) else None


def _is_key(expression: object) -> bool:
    name = _column_name(expression)
    return name is not None and (name in KEY_COLUMNS or name.endswith("_id"))


def _constant(expression: object) -> bool:
    """A constant, a bound parameter, or a list or array of them."""
    if isinstance(expression, tuple):
        return bool(expression) and all(_constant(item) for item in expression)
    if isinstance(expression, ast.A_Const | ast.ParamRef):
        return True
    if isinstance(expression, ast.TypeCast):
        return _constant(expression.arg)
    if isinstance(expression, ast.A_ArrayExpr):
        return _constant(expression.elements or ())
    return False
