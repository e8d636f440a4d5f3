"""Alembic environment, shaped like alembic's own async template.

The database URL and schema come from the environment (DATABASE_URL, DATABASE_SCHEMA), never
from alembic.ini. On PostgreSQL the tables and alembic_version live in the configured schema,
one migrator runs at a time (an advisory lock), and DDL that cannot get its table lock gives
up after MIGRATION_LOCK_TIMEOUT instead of queueing live queries behind it.
"""

from __future__ import annotations

import asyncio
import logging
from logging.config import fileConfig
from pathlib import Path
from typing import Any

from alembic import context
from alembic.util import CommandError
from alembic_prestart import async_migration_lock
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from migrations.blockers import BlockerWatch
from migrations.settings import MigrationSettings, create_migration_engine
from service.tables import metadata

logger = logging.getLogger("migrations.env")

LOCK_NOT_AVAILABLE = "55P03"
# PostgreSQL 14+: a backend whose client vanished stops its statement (and frees its locks)
# within this interval instead of running on until it next writes to the socket.
CLIENT_CHECK_INTERVAL = "2s"


def _configure_logging() -> None:
    config = context.config
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)


def _include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Autogenerate compares the app's tables only: never the version table, whose schema
    is the app's own here (it would be proposed for dropping)."""
    if type_ == "table":
        return name != "alembic_version"
    return True


def _configure_options(settings: MigrationSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "target_metadata": metadata,
        "transaction_per_migration": True,
        "compare_type": True,
        "include_name": _include_name,
    }
    if settings.url.is_postgres:
        options["version_table_schema"] = settings.schema
    else:
        # SQLite cannot ALTER most things; batch mode copies the table instead. Its DDL is
        # transactional once we issue BEGIN ourselves (see create_migration_engine).
        options["render_as_batch"] = True
        options["transactional_ddl"] = True
    return options


def run_migrations_offline(settings: MigrationSettings) -> None:
    """Emit the SQL to stdout instead of running it (`alembic upgrade head --sql`)."""
    context.configure(
        url=settings.url.redacted(),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_configure_options(settings),
    )
    with context.begin_transaction():
        if settings.url.is_postgres:
            context.execute(f'CREATE SCHEMA IF NOT EXISTS "{settings.schema}"')
            context.execute(f'SET search_path TO "{settings.schema}"')
        context.run_migrations()


def do_run_migrations(connection: Connection, settings: MigrationSettings) -> None:
    context.configure(connection=connection, **_configure_options(settings))
    with context.begin_transaction():
        context.run_migrations()


async def _prepare_postgres_session(
    connection: AsyncConnection, settings: MigrationSettings
) -> int:
    """Create the schema, set the session's timeouts; return the backend's pid."""
    await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{settings.schema}"'))
    await connection.execute(text(f"SET lock_timeout = '{int(settings.lock_timeout * 1000)}ms'"))
    await connection.execute(
        text(f"SET statement_timeout = '{int(settings.statement_timeout * 1000)}ms'")
    )
    version = (await connection.execute(text("SHOW server_version_num"))).scalar_one()
    if int(version) >= 140000:
        await connection.execute(
            text(f"SET client_connection_check_interval = '{CLIENT_CHECK_INTERVAL}'")
        )
    pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    await connection.commit()
    return pid


def _is_lock_timeout(error: DBAPIError) -> bool:
    for cause in (error.orig, getattr(error.orig, "__cause__", None)):
        if getattr(cause, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            return True
    return False


async def _migrate_postgres(engine: AsyncEngine, settings: MigrationSettings) -> None:
    async with engine.connect() as lock_connection:
        lock_connection = await lock_connection.execution_options(isolation_level="AUTOCOMMIT")
        async with async_migration_lock(lock_connection, schema=settings.schema):
            await _migrate_postgres_locked(engine, lock_connection, settings)


async def _migrate_postgres_locked(
    engine: AsyncEngine, lock_connection: AsyncConnection, settings: MigrationSettings
) -> None:
    attempts = settings.lock_retries + 1
    for attempt in range(1, attempts + 1):
        async with engine.connect() as connection:
            pid = await _prepare_postgres_session(connection, settings)
            watch = BlockerWatch(lock_connection, pid)
            watcher = asyncio.create_task(watch.run())
            try:
                await connection.run_sync(do_run_migrations, settings)
                return
            except DBAPIError as error:
                if not _is_lock_timeout(error):
                    raise
                blockers = ", ".join(s.describe() for s in watch.last_seen) or "unknown"
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        if attempt < attempts:
            logger.warning(
                "lock timeout after %.0fs (attempt %d of %d), blocked by %s; "
                "the revision was rolled back, retrying in %.0fs",
                settings.lock_timeout,
                attempt,
                attempts,
                blockers,
                settings.lock_retry_delay,
            )
            await asyncio.sleep(settings.lock_retry_delay)
    raise CommandError(
        f"lock timeout: a revision could not lock its table within {settings.lock_timeout:g}s "
        f"in {attempts} attempts and was rolled back; blocked by {blockers}"
    )


async def run_async_migrations(settings: MigrationSettings) -> None:
    engine = create_migration_engine(settings)
    try:
        if settings.url.is_postgres:
            await _migrate_postgres(engine, settings)
        else:
            async with engine.connect() as connection, async_migration_lock(connection):
                await connection.run_sync(do_run_migrations, settings)
    finally:
        await engine.dispose()


def run_migrations_online(settings: MigrationSettings) -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        # A caller (a test, say) lends us a connection it holds: migrate on it as it is.
        do_run_migrations(connection, settings)
        return
    asyncio.run(run_async_migrations(settings))


def main() -> None:
    _configure_logging()
    config_file = context.config.config_file_name
    root = Path(config_file).resolve().parent if config_file else Path.cwd()
    try:
        settings = MigrationSettings.from_environment(root)
    except ValueError as error:
        raise CommandError(str(error)) from None
    where = settings.url.describe()
    logger.info(
        "database %s" + (f", schema {settings.schema}" if settings.url.is_postgres else ""), where
    )
    if context.is_offline_mode():
        run_migrations_offline(settings)
    else:
        run_migrations_online(settings)


# Alembic sets up its context proxy before it runs this file; a plain import has none, and
# must not fail.
if getattr(context, "_proxy", None) is not None:
    main()
