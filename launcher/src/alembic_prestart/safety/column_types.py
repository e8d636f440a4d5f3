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
PRECISION_TYPES = frozenset({"timestamp", "timestamptz", "time"})  # default precision 6


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


def safe_widening(old: ast.TypeName, new: ast.TypeName) -> bool:
    """Changes PostgreSQL makes without a rewrite (binary-coercible, no narrower modifier)."""
    if old.arrayBounds or new.arrayBounds:
        return False
    before, after = type_name_of(old), type_name_of(new)
    old_mods, new_mods = modifiers(old), modifiers(new)
    if old_mods is None or new_mods is None:
        return False
    if after == "text":
        return before in ("varchar", "text")
    if after == "varchar":
        if before == "text":
            return not new_mods
        return before == "varchar" and (not new_mods or (old_mods != () and new_mods >= old_mods))
    if after == "numeric" and before == "numeric":
        if not new_mods:
            return True
        return (
            len(old_mods) == len(new_mods)
            and new_mods[0] >= old_mods[0]
            and (old_mods[1:] == new_mods[1:])
        )
    if after in PRECISION_TYPES and before == after:
        return (new_mods or (6,))[0] >= (old_mods or (6,))[0]
    if after == "inet":
        return before in ("cidr", "inet")
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
