"""What the migration-safety rules need to know of expressions and types: whether a default is
volatile, whether a type change is a widening PostgreSQL makes without rewriting the table."""

from __future__ import annotations

from pglast import ast, parse_sql
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
        return (
            isinstance(name, ast.String)
            and name.sval in NON_VOLATILE_FUNCTIONS
            and all(non_volatile(a) for a in expression.args or ())
        )
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
        return bool(old) and (new + (0,))[1] == (old + (0,))[1] and new[0] >= old[0]
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
