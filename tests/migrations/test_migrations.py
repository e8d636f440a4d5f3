"""The Alembic environment on both backends."""

import asyncio
import importlib.util
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from tests.urls import PROJECT_ROOT, DatabaseURL
from service.tables import metadata
from tests import postgres
from tests.processes import run_alembic
from tests.revisions import add_revision


def test_upgrade_downgrade_upgrade(database_url: DatabaseURL) -> None:
    """upgrade head, downgrade base, upgrade head again all succeed, from cwd /."""
    for args in (("upgrade", "head"), ("downgrade", "base"), ("upgrade", "head")):
        result = run_alembic(database_url, *args)
        assert result.returncode == 0, result.stderr
    assert "Running upgrade  -> 0001" in result.stderr


def test_postgres_keeps_tables_and_version_in_the_schema(postgres_url: DatabaseURL) -> None:
    """On PostgreSQL, users and alembic_version live in test_app."""
    assert run_alembic(postgres_url, "upgrade", "head").returncode == 0
    rows = postgres.fetch(
        postgres_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'test_app'",
    )
    assert {row[0] for row in rows} == {"users", "alembic_version"}
    assert postgres.fetch(postgres_url, "SELECT version_num FROM test_app.alembic_version") == [
        ("0001",)
    ]


def test_autogenerate_finds_no_difference_from_the_models(postgres_url: DatabaseURL) -> None:
    """The migrated PostgreSQL schema equals service.tables: autogenerate sees nothing."""
    assert run_alembic(postgres_url, "upgrade", "head").returncode == 0

    def compare(connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    async def differences() -> list:
        engine = create_async_engine(
            postgres_url.url,
            poolclass=pool.NullPool,
            connect_args={"server_settings": {"search_path": "test_app"}},
        )
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(compare)
        finally:
            await engine.dispose()

    assert asyncio.run(differences()) == []


def test_offline_sql_is_generated(database_url: DatabaseURL) -> None:
    """`upgrade head --sql` prints the DDL without touching the database."""
    result = run_alembic(database_url, "upgrade", "head", "--sql")
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE users" in result.stdout
    if database_url.password:
        assert database_url.password not in result.stdout + result.stderr


def test_failing_sqlite_revision_rolls_back_whole(
    sqlite_url: DatabaseURL, project_copy: Path
) -> None:
    """SQLite DDL runs in the revision's transaction: a failure leaves nothing behind."""
    import sqlite3

    root = project_copy
    add_revision(
        root,
        "0002",
        "0001",
        """
        op.create_table("half", sa.Column("id", sa.Integer, primary_key=True))
        raise RuntimeError("boom")
    """,
    )
    result = run_alembic(sqlite_url, "upgrade", "head", root=root)
    assert result.returncode != 0
    with sqlite3.connect(sqlite_url.sqlite_path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    assert "half" not in tables
    assert versions == [("0001",)]


def test_env_py_imports_outside_alembic() -> None:
    """Importing migrations/env.py directly does not raise."""
    spec = importlib.util.spec_from_file_location(
        "env_under_test", PROJECT_ROOT / "migrations/env.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.run_migrations_online)


def test_status_lists_pending_revisions(database_url: DatabaseURL) -> None:
    """migrations.status, the authoritative fallback of `check`, lists what is pending."""
    import subprocess
    import sys

    from tests.processes import launcher_env

    def status() -> str:
        return subprocess.run(
            [sys.executable, "-m", "migrations.status"],
            cwd=PROJECT_ROOT,
            env=launcher_env(database_url),
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert status() == "pending 0001\n"
    assert run_alembic(database_url, "upgrade", "head").returncode == 0
    assert status() == "current 0001\n"
