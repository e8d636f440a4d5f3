"""The one reader of the version table, for the launcher, the app's readiness, tests and benches.

PostgreSQL through an asyncpg connection the caller holds; SQLite through the standard library's
sqlite3, read-only. None means there is no version table yet (nothing was ever applied).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class VersionTableError(Exception):
    """The version table exists but cannot be read (permissions, a corrupt file)."""


async def read_postgres_versions(connection: Any, schema: str) -> tuple[str, ...] | None:
    """The revisions in schema.alembic_version, sorted, on an asyncpg connection."""
    import asyncpg

    table = f'"{schema}".alembic_version'
    try:
        if not await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            return None
        rows = await connection.fetch(f"SELECT version_num FROM {table}")
    except asyncpg.PostgresError as error:  # e.g. no USAGE on the schema for this role
        raise VersionTableError(f"cannot read {schema}.alembic_version: {error}") from None
    return tuple(sorted(str(row[0]) for row in rows))


def read_sqlite_versions(path: Path) -> tuple[str, ...] | None:
    """The revisions in a SQLite database's alembic_version, sorted."""
    import sqlite3  # the standard library's; imported only for SQLite

    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as connection:
            exists = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
            ).fetchone()
            if not exists:
                return None
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as error:
        raise VersionTableError(f"cannot read SQLite database {path}: {error}") from None
    return tuple(sorted(str(row[0]) for row in rows))
