"""Alembic environment, shaped like alembic's own async template.

The engine, the offline URL, the migration lock and the safety guard come from the launcher
(alembic_prestart): DATABASE_URL is read once, the launcher's way, and the tables and
alembic_version live in DATABASE_SCHEMA on PostgreSQL. On top of the template, DDL that cannot
get its table lock gives up after MIGRATION_LOCK_TIMEOUT instead of queueing live queries
behind it, and is retried, naming the session that blocked it.
"""

from __future__ import annotations

import asyncio
import logging
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.util import CommandError
from alembic_prestart import async_migration_lock, create_async_engine, migration_lock, offline_url
from alembic_prestart.config import SettingError
from alembic_prestart.db.url import DatabaseURLError
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from migrations.blockers import BlockerWatch
from migrations.settings import MigrationSettings
from service.defaults import DATABASE_URL as DEFAULT_DATABASE_URL
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


def _configure_options(dialect: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "target_metadata": metadata,
        "transaction_per_migration": True,
        "compare_type": True,
        "include_name": _include_name,
    }
    if dialect == "sqlite":
        # SQLite cannot ALTER most things; batch mode copies the table instead. Its DDL is
        # transactional once we issue BEGIN ourselves (see _make_sqlite_ddl_transactional).
        options["render_as_batch"] = True
        options["transactional_ddl"] = True
    return options


def run_migrations_offline(settings: MigrationSettings) -> None:
    """Emit the SQL to stdout instead of running it (`alembic upgrade head --sql`)."""
    url = offline_url(default=DEFAULT_DATABASE_URL)
    dialect = url.partition(":")[0]
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_configure_options(dialect),
    )
    schema = settings.schema
    with context.begin_transaction():
        if dialect == "postgresql":
            context.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            context.execute(f'SET search_path TO "{schema}"')
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **_configure_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


async def _prepare_postgres_session(
    connection: AsyncConnection, settings: MigrationSettings
) -> int:
    """Set the session's timeouts; return the backend's pid."""
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
    return int(pid)


def _is_lock_timeout(error: DBAPIError) -> bool:
    for cause in (error.orig, getattr(error.orig, "__cause__", None)):
        if getattr(cause, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            return True
    return False


async def _migrate_postgres(engine: AsyncEngine, settings: MigrationSettings) -> None:
    async with async_migration_lock(engine, schema=settings.schema) as lock_connection:
        # The lock connection only watches who blocks the migration: no transaction of its own.
        lock_connection = await lock_connection.execution_options(isolation_level="AUTOCOMMIT")
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
                await connection.run_sync(do_run_migrations)
                return
            except DBAPIError as error:
                if not _is_lock_timeout(error):
                    raise
                blockers = ", ".join(s.describe() for s in watch.last_seen) or "unknown"
            finally:
                watch.stop()
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


def _make_sqlite_ddl_transactional(engine: AsyncEngine) -> None:
    """The sqlite3 module commits before DDL on its own; take BEGIN/COMMIT into our hands so a
    failing revision rolls back whole, as on PostgreSQL."""

    @event.listens_for(engine.sync_engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


async def run_async_migrations(settings: MigrationSettings) -> None:
    engine = create_async_engine(default=DEFAULT_DATABASE_URL, schema=settings.schema)
    try:
        if engine.dialect.name == "postgresql":
            await _migrate_postgres(engine, settings)
        else:
            _make_sqlite_ddl_transactional(engine)
            async with async_migration_lock(engine) as connection:
                await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online(settings: MigrationSettings) -> None:
    lent = context.config.attributes.get("connection")
    if lent is not None:
        # A caller (a test, pytest-alembic) lends an Engine or a Connection it holds: migrate
        # on it, under the lock, in the configured schema.
        with migration_lock(lent, schema=settings.schema) as connection:
            do_run_migrations(connection)
        return
    asyncio.run(run_async_migrations(settings))


def main() -> None:
    _configure_logging()
    try:
        settings = MigrationSettings.from_environment()
    except (SettingError, DatabaseURLError) as error:
        raise CommandError(str(error)) from None
    if context.is_offline_mode():
        run_migrations_offline(settings)
    else:
        run_migrations_online(settings)


# Alembic sets up its context proxy before it runs this file; a plain import has none, and
# must not fail.
if getattr(context, "_proxy", None) is not None:
    main()
