"""The store's SQL, derived from the table in service/tables.py: the source of service/sql.py.

Every statement selects or returns all of the table's columns, so a column added to the table
is read and returned without touching the store; rows are mapped by column name. The columns
a request writes are named in WRITTEN: POST /users gives them all; PATCH /users/{id} any of
them, and there is one UPDATE for each set of columns it may send, setting exactly those (a
column sent as null is set to NULL; one left out is not in the SET list). That is 2**n - 1
statements for n written columns, compiled here once, each a prepared statement in asyncpg's
cache.

The service does not import SQLAlchemy at run time (it would cost its start-up about 200 ms):
the statements are compiled here, once per dialect, into service/sql.py, which the store reads.
Regenerate it after changing the table:

    .venv/bin/python -m service.statements

tests/service/test_statements.py fails when service/sql.py and the table disagree, and when
the table gains a column that needs a value and is not in WRITTEN.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.engine import Dialect

from service.store import update_statement
from service.tables import users

WRITTEN = ("name", "email")  # what POST /users and PATCH /users/{id} carry
SQL_MODULE = Path(__file__).with_name("sql.py")


def build(table: Table = users) -> dict[str, Any]:
    """The statements of the store, written against `table` (SQLAlchemy Core)."""
    columns = tuple(table.c)
    key = table.c.id

    def param(name: str) -> Any:
        return bindparam(name, type_=table.c[name].type)

    written = {name: param(name) for name in WRITTEN}
    built: dict[str, Any] = {
        "get": select(*columns).where(key == param("id")),
        "create": insert(table).values(**written).returning(*columns),
        "list": select(*columns)
        .where(key > bindparam("after", type_=key.type))
        .order_by(key)
        .limit(bindparam("limit")),
        "delete": delete(table).where(key == param("id")).returning(key),
    }
    for sent in updatable_sets():
        built[update_statement(sent)] = (
            update(table)
            .where(key == param("id"))
            .values(**{name: written[name] for name in sent})
            .returning(*columns)
        )
    return built


def updatable_sets() -> list[tuple[str, ...]]:
    """Every non-empty set of written columns, each in WRITTEN's order."""
    return [sent for size in range(1, len(WRITTEN) + 1) for sent in combinations(WRITTEN, size)]


def compile_for(dialect: Dialect, table: Table = users) -> dict[str, dict[str, Any]]:
    """Every statement compiled for one dialect: its SQL text, the order its named parameters
    go in, and the values of the parameters the compiler added (SQLite's OFFSET)."""
    compiled = {}
    for name, statement in build(table).items():
        result = statement.compile(dialect=dialect)
        compiled[name] = {
            "sql": str(result),
            "names": list(result.positiontup or ()),
            "defaults": {k: v for k, v in result.params.items() if v is not None},
        }
    return compiled


def compile_all(table: Table = users) -> dict[str, Any]:
    """What service/sql.py holds."""
    from sqlalchemy.dialects.postgresql.asyncpg import dialect as postgresql  # $n, as asyncpg
    from sqlalchemy.dialects.sqlite.pysqlite import dialect as sqlite  # ?, as sqlite3

    return {
        "STATEMENTS": {
            "postgresql": compile_for(postgresql(), table),  # type: ignore[no-untyped-call]
            "sqlite": compile_for(sqlite(), table),
        },
        # SQLite hands these back as text; the store parses them.
        "DATETIME_COLUMNS": [c.name for c in table.c if c.type.python_type is datetime],
    }


def render(table: Table = users) -> str:
    """The source of service/sql.py (JSON literals: plain data, no import)."""
    lines = [
        '"""Generated from service/tables.py by `python -m service.statements`: do not edit."""',
        "",
        "# ruff: noqa: E501",
        "from typing import Any",
        "",
        "# fmt: off",
    ]
    for name, value in compile_all(table).items():
        lines.append(f"{name}: Any = {json.dumps(value, indent=4)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    SQL_MODULE.write_text(render())
    print(f"wrote {SQL_MODULE}", file=sys.stderr)
