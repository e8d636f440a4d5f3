"""The store's SQL, derived from the table in service/tables.py and compiled once per dialect.

Every statement selects or returns all of the table's columns, so a column added to the table
is read and returned without touching this file; rows are mapped by column name. The columns a
request writes are named in WRITTEN; tests/service/test_statements.py fails when the table
gains a column that needs a value and is not among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable

from service.tables import users

WRITTEN = ("name", "email")  # what POST /users and PATCH /users/{id} carry


@dataclass(frozen=True)
class Statement:
    """One compiled statement: its SQL text and the order its named parameters go in."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    def args(self, params: dict[str, Any]) -> tuple[Any, ...]:
        """The driver's positional arguments for these named parameters."""
        return tuple(params[name] if name in params else self.defaults[name] for name in self.names)


def build(table: Table = users) -> dict[str, Executable]:
    """The statements of the store, written against `table` (SQLAlchemy Core)."""
    columns = tuple(table.c)
    key = table.c.id

    def param(name: str) -> Any:
        return bindparam(name, type_=table.c[name].type)

    written = {name: param(name) for name in WRITTEN}
    return {
        "get": select(*columns).where(key == param("id")),
        "create": insert(table).values(**written).returning(*columns),
        "list": select(*columns)
        .where(key > bindparam("after", type_=key.type))
        .order_by(key)
        .limit(bindparam("limit")),
        "update": update(table)
        .where(key == param("id"))
        .values(**{name: func.coalesce(value, table.c[name]) for name, value in written.items()})
        .returning(*columns),
        "delete": delete(table).where(key == param("id")).returning(key),
    }


def compile_for(dialect: Dialect, table: Table = users) -> dict[str, Statement]:
    """Every statement compiled for one dialect (at start-up, never per request)."""
    compiled = {}
    for name, statement in build(table).items():
        result = statement.compile(dialect=dialect)
        compiled[name] = Statement(
            sql=str(result),
            names=tuple(result.positiontup or ()),
            defaults={k: v for k, v in result.params.items() if v is not None},
        )
    return compiled


def postgres_statements(table: Table = users) -> dict[str, Statement]:
    from sqlalchemy.dialects.postgresql.asyncpg import dialect  # $n placeholders, as asyncpg

    return compile_for(dialect(), table)


def sqlite_statements(table: Table = users) -> dict[str, Statement]:
    from sqlalchemy.dialects.sqlite.pysqlite import dialect  # ? placeholders, as sqlite3

    return compile_for(dialect(), table)
