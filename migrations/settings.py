"""What the migration environment reads from its process environment, and its engine.

The launcher passes everything here through the environment, never through argv, so a
password never shows in a process list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic_prestart.db.url import DatabaseURL, parse_database_url, validate_schema
from sqlalchemy import event, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service import defaults


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


@dataclass(frozen=True)
class MigrationSettings:
    url: DatabaseURL
    schema: str
    lock_timeout: float
    statement_timeout: float
    lock_retries: int
    lock_retry_delay: float
    application_name: str

    @classmethod
    def from_environment(cls, root: Path) -> MigrationSettings:
        """`root`: the folder of alembic.ini, from which a relative SQLite path resolves."""
        return cls(
            url=parse_database_url(
                os.environ.get("DATABASE_URL"), root=root, default=defaults.DATABASE_URL
            ),
            schema=validate_schema(os.environ.get("DATABASE_SCHEMA") or defaults.DATABASE_SCHEMA),
            lock_timeout=_seconds("MIGRATION_LOCK_TIMEOUT", 10.0),
            # A runaway statement must not outlive the launcher's own migration timeout.
            statement_timeout=_seconds(
                "MIGRATION_STATEMENT_TIMEOUT", _seconds("MIGRATION_TIMEOUT", 600.0)
            ),
            lock_retries=int(_seconds("MIGRATION_LOCK_RETRIES", 3)),
            lock_retry_delay=_seconds("MIGRATION_LOCK_RETRY_DELAY", 2.0),
            application_name=os.environ.get(
                "MIGRATION_APPLICATION_NAME", f"alembic migrate pid={os.getpid()}"
            )[:63],
        )


def create_migration_engine(settings: MigrationSettings) -> AsyncEngine:
    """An engine without a pool (one migration run, then disposed) in the right schema.

    On PostgreSQL, asyncpg itself reads DATABASE_URL as it was given (sslmode, host lists,
    PG* variables, passfile): SQLAlchemy only wraps the connection asyncpg makes, and never
    re-reads the URL's query string.
    """
    if settings.url.is_sqlite:
        settings.url.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(settings.url.sqlalchemy_url(), poolclass=pool.NullPool)
        _make_sqlite_ddl_transactional(engine)
        return engine
    dsn = settings.url.asyncpg_dsn()
    server_settings = {
        "search_path": settings.schema,
        "application_name": settings.application_name,
    }

    async def connect() -> Any:
        import asyncpg

        return await asyncpg.connect(dsn, server_settings=server_settings)

    return create_async_engine(
        "postgresql+asyncpg://", poolclass=pool.NullPool, async_creator=connect
    )


def _make_sqlite_ddl_transactional(engine: AsyncEngine) -> None:
    """The sqlite3 module commits before DDL on its own; take BEGIN/COMMIT into our hands so a
    failing revision rolls back whole, as on PostgreSQL."""

    @event.listens_for(engine.sync_engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")
