"""Read a test database's state directly, whatever its backend."""

import sqlite3

from tests.support import postgres
from tests.support.urls import DatabaseURL


def applied_versions(url: DatabaseURL) -> list[str]:
    if url.is_sqlite:
        if not url.sqlite_path.exists():
            return []
        with sqlite3.connect(url.sqlite_path) as connection:
            try:
                rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
            except sqlite3.OperationalError:
                return []
        return sorted(row[0] for row in rows)
    if not table_exists(url, "alembic_version"):
        return []
    return sorted(
        row[0] for row in postgres.fetch(url, "SELECT version_num FROM test_app.alembic_version")
    )


def table_exists(url: DatabaseURL, table: str) -> bool:
    if url.is_sqlite:
        if not url.sqlite_path.exists():
            return False
        with sqlite3.connect(url.sqlite_path) as connection:
            row = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)
            ).fetchone()
        return row is not None
    return bool(
        postgres.fetch(url, "SELECT to_regclass($1) IS NOT NULL", f"test_app.{table}")[0][0]
    )
