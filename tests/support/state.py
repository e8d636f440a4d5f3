"""Read a test database's state directly, whatever its backend."""

import sqlite3

from alembic_prestart.db.versions import read_postgres_versions, read_sqlite_versions

from tests.support import postgres
from tests.support.urls import DatabaseURL


def applied_versions(url: DatabaseURL, schema: str = "test_app") -> list[str]:
    """What the database holds, read by the launcher's own version reader."""
    if url.is_sqlite:
        return list(read_sqlite_versions(url.sqlite_path) or ())
    return list(
        postgres.run_on(url, lambda connection: read_postgres_versions(connection, schema)) or ()
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
