"""The store's SQL derives from service/tables.py: the table and the store cannot disagree."""

import itertools
import json
import re

import pytest
from sqlalchemy import Column, MetaData, String, Table

from service import sql
from service.main import create_app
from service.schemas import UserCreate, UserUpdate
from service.statements import WRITTEN, compile_all
from service.store import statements, update_statement
from service.tables import users

DIALECTS = ["postgresql", "sqlite"]


def _with_extra_column(*, nullable: bool) -> Table:
    """A copy of the users table with one more column, as the next migration might add."""
    table = users.to_metadata(MetaData())
    table.append_column(Column("test_only_column", String(30), nullable=nullable))
    return table


def _selected(sql: str) -> list[str]:
    """The column names a statement reads or returns, in order."""
    match = re.search(r"(?:SELECT|RETURNING) (.+?)(?:\s+FROM|$)", sql, re.DOTALL)
    assert match, sql
    return [name.strip().split(".")[-1] for name in match.group(1).split(",")]


def test_the_store_runs_what_the_table_compiles_to() -> None:
    """service/sql.py is service/tables.py compiled: regenerate it after changing the table
    (`python -m service.statements`)."""
    stored = {"STATEMENTS": sql.STATEMENTS, "DATETIME_COLUMNS": sql.DATETIME_COLUMNS}
    assert stored == json.loads(json.dumps(compile_all()))


def test_a_column_added_to_the_table_but_not_to_the_store_is_caught() -> None:
    """A new column changes what the table compiles to, so the check above fails."""
    compiled = json.loads(json.dumps(compile_all(_with_extra_column(nullable=True))))
    assert compiled["STATEMENTS"] != sql.STATEMENTS
    for dialect in DIALECTS:
        for name in ("get", "list", "create", update_statement(WRITTEN)):
            assert _selected(compiled["STATEMENTS"][dialect][name]["sql"])[-1] == "test_only_column"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_statement_reads_every_column_of_the_table(dialect: str) -> None:
    """get, list, create and update select or return exactly the table's columns."""
    for name in ("get", "list", "create", update_statement(WRITTEN)):
        selected = _selected(statements(dialect)[name].sql)
        assert selected == [c.name for c in users.c], name


def _required_columns(table: Table) -> set[str]:
    """Columns an INSERT must give a value: no default, no server default, not the key."""
    return {
        column.name
        for column in table.c
        if not column.nullable
        and column.default is None
        and column.server_default is None
        and not column.primary_key
    }


def test_the_store_writes_every_column_the_table_requires() -> None:
    """The columns the store writes are exactly the ones the table cannot fill itself."""
    assert _required_columns(users) == set(WRITTEN)


def test_a_required_column_the_store_does_not_write_is_caught() -> None:
    """The check above fails for a table with one more required column."""
    assert _required_columns(_with_extra_column(nullable=False)) != set(WRITTEN)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_parameters_are_bound_by_name(dialect: str) -> None:
    """Positional arguments come from named parameters, in the order the SQL wants them."""
    update = statements(dialect)[update_statement(["name", "email"])]
    args = update.args({"id": 5, "name": "Ada", "email": None})
    assert dict(zip(update.names, args, strict=True)) == {"id": 5, "name": "Ada", "email": None}


def _set_columns(sql: str) -> list[str]:
    """The columns an UPDATE's SET list names, in order."""
    match = re.search(r"\bSET (.+?) WHERE", sql, re.DOTALL)
    assert match, sql
    return [item.split("=")[0].strip() for item in match.group(1).split(",")]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_each_patch_sets_exactly_the_fields_sent(dialect: str) -> None:
    """Every set of written columns has an UPDATE setting those alone, to the value sent
    (null included: no coalesce keeping the old value)."""
    compiled = statements(dialect)
    for size in range(1, len(WRITTEN) + 1):
        for sent in itertools.combinations(WRITTEN, size):
            update = compiled[update_statement(sent)]
            assert sorted(_set_columns(update.sql)) == sorted(sent), update.sql
            assert set(update.names) == {*sent, "id"}
            assert "coalesce" not in update.sql.lower()
    updates = [name for name in compiled if name.startswith("update")]
    assert len(updates) == 2 ** len(WRITTEN) - 1


def test_patch_and_post_fields_are_the_written_columns() -> None:
    """What POST and PATCH accept is what the store writes (WRITTEN), no more, no less."""
    assert set(UserCreate.model_fields) == set(WRITTEN)
    assert set(UserUpdate.model_fields) == set(WRITTEN)


def test_the_openapi_document_says_which_patch_fields_are_nullable() -> None:
    """A PATCH field accepts null in the document exactly where its column is nullable."""
    document = create_app().openapi()
    properties = document["components"]["schemas"]["UserUpdate"]["properties"]
    for name, field in properties.items():
        variants = field.get("anyOf", [field])
        documented_nullable = any(variant.get("type") == "null" for variant in variants)
        assert documented_nullable == users.c[name].nullable, name
        assert "default" not in field, f"{name}: left out means unchanged, not a default"
