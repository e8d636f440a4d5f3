"""The migration lock for env.py: the launcher's public helper for Alembic environments.

Alembic's `generic` template becomes safe with two lines::

    from alembic_prestart import migration_lock
    ...
    with migration_lock(connectable) as connection:          # added
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()

and its `async` template likewise, with `async with async_migration_lock(connectable) as
connection:` around `await connection.run_sync(do_run_migrations)`. `connectable` is an Engine
or a Connection (sync or async): what Alembic's cookbook and pytest-alembic lend through
`config.attributes["connection"]` works as well as the template's own engine.

Inside the block, on PostgreSQL:
- the schema (DATABASE_SCHEMA, else the session's current one) exists and is the search_path,
  so the tables and the version table land where the launcher reads them back;
- the migration lock is held: under the launcher by the launcher's own session (its server pid
  is MIGRATION_LOCK_HOLDER; checked in pg_locks), run bare by this session, kept from idling
  out, waiting at most what is left of MIGRATION_TIMEOUT and failing as Alembic's own errors
  do (`FAILED: ...`, exit 255);
- before every statement, the lock is checked to be still held: a lost lock stops the
  migration before its next statement (`FAILED: the migration lock was lost ...`);
- the safety analysis judges each statement before it runs (MIGRATION_LINT), see
  safety/guard.py.
SQLite: an exclusive flock on a file beside the database. The waiting policy is lock.core's,
shared with the launcher.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from alembic_prestart.config import MigrationEnvironment, SettingError
from alembic_prestart.lock.core import (
    POOLER_HINT,
    LockTimeout,
    Waiting,
    acquire_postgres,
    advisory_lock_key,
    held_by_sql,
    keep_alive_sql,
    unlock_sql,
)
from alembic_prestart.safety.protocol import GUARD_INSTALLED

# Alembic's templates configure the `alembic` logger at INFO and the root at WARN, and their
# fileConfig() disables loggers it does not name, but not the children of those it does:
# lines logged here are seen by whoever runs `alembic upgrade head`.
logger = logging.getLogger("alembic.prestart")


def command_error(message: str) -> Exception:
    try:
        from alembic.util import CommandError  # Alembic prints it as one FAILED: line
    except ImportError:  # pragma: no cover - env.py always runs under Alembic
        return RuntimeError(message)
    return CommandError(message)


def _settings() -> MigrationEnvironment:
    try:
        return MigrationEnvironment.from_environment()
    except SettingError as error:
        raise command_error(str(error)) from None


@contextlib.contextmanager
def migration_lock(
    connectable: Any, *, schema: str | None = None, timeout: float | None = None
) -> Iterator[Any]:
    """Hold the migration lock for the block; yields the Connection to migrate on.

    `connectable`: a SQLAlchemy Engine (a connection is opened and closed here) or Connection.
    `schema`: the one holding alembic_version (default: DATABASE_SCHEMA, else the session's
    current schema); the launcher keys its lock the same way. `timeout`: seconds to wait for
    the lock (default: what is left of MIGRATION_TIMEOUT).
    """
    from sqlalchemy.engine import Engine

    if isinstance(connectable, Engine):
        with (
            connectable.connect() as connection,
            migration_lock(connection, schema=schema, timeout=timeout) as locked,
        ):
            yield locked
            if locked.in_transaction():
                locked.commit()
        return
    connection = connectable
    settings = _settings()
    wait = timeout if timeout is not None else settings.remaining()
    dialect = connection.dialect.name
    if dialect == "sqlite":
        database = connection.engine.url.database
        if not database or database == ":memory:":
            yield connection
            return
        with sqlite_file_lock(Path(database).resolve(), timeout=wait):
            yield connection
        return
    if dialect != "postgresql":
        logger.warning("no migration lock for the %s dialect: migrating without one", dialect)
        yield connection
        return
    with _postgres_lock(connection, schema or settings.schema, wait, settings):
        yield connection


@contextlib.asynccontextmanager
async def async_migration_lock(
    connectable: Any, *, schema: str | None = None, timeout: float | None = None
) -> AsyncIterator[Any]:
    """The same for an AsyncEngine or AsyncConnection: the lock is taken through its sync face,
    and the block gets the AsyncConnection to migrate on."""
    from sqlalchemy.ext.asyncio import AsyncEngine

    if isinstance(connectable, AsyncEngine):
        async with (
            connectable.connect() as connection,
            async_migration_lock(connection, schema=schema, timeout=timeout) as locked,
        ):
            yield locked
            if locked.in_transaction():
                await locked.commit()
        return
    stack = contextlib.ExitStack()

    def enter(sync_connection: Any) -> None:
        stack.enter_context(migration_lock(sync_connection, schema=schema, timeout=timeout))

    await connectable.run_sync(enter)
    try:
        yield connectable
    finally:
        await connectable.run_sync(lambda _sync: stack.close())


@contextlib.contextmanager
def _postgres_lock(
    connection: Any, schema: str | None, timeout: float, settings: MigrationEnvironment
) -> Iterator[None]:
    began_here = not connection.in_transaction()

    def query(sql: str) -> list[tuple[Any, ...]]:
        result = connection.exec_driver_sql(sql)
        return [tuple(row) for row in result] if result.returns_rows else []

    def end_our_transaction() -> None:
        # Alembic must find the connection outside a transaction, or it treats the migration as
        # part of an outer one it never commits; a session-level lock survives the commit.
        if began_here and connection.in_transaction():
            connection.commit()

    database = query("SELECT current_database()")[0][0]
    schema = schema or query("SELECT current_schema()")[0][0]
    _use_schema(query, schema)
    key = advisory_lock_key(database, schema)
    holder = settings.lock_holder
    if holder is not None and query(held_by_sql(key, holder))[0][0]:
        logger.info(
            "migration lock on schema %s held for this run by pid %s, the launcher's session",
            schema,
            holder,
        )
        end_our_transaction()
        with _guarded_statements(connection, key, holder, schema, settings):
            yield
        return
    try:
        acquire_postgres(query, key, Waiting(f"schema {schema}", timeout, logger))
    except LockTimeout as error:
        end_our_transaction()
        raise command_error(f"{error}; nothing was applied") from None
    own_pid = int(query("SELECT pg_backend_pid()")[0][0])
    if not query(held_by_sql(key, own_pid))[0][0]:
        end_our_transaction()
        raise command_error(
            f"the migration lock was granted, but not to this session: {POOLER_HINT}"
        )
    version = int(query("SELECT current_setting('server_version_num')")[0][0])
    for statement in keep_alive_sql(version):
        query(statement)
    end_our_transaction()
    logger.info("migration lock acquired on schema %s", schema)
    try:
        with _guarded_statements(connection, key, own_pid, schema, settings):
            yield
    finally:
        with contextlib.suppress(Exception):  # a lost session has released it already
            if connection.in_transaction():
                connection.rollback()
            query(unlock_sql(key))
            end_our_transaction()


def _use_schema(query: Callable[[str], list[tuple[Any, ...]]], schema: str) -> None:
    """The schema exists and comes first in this session's search_path, so unqualified DDL
    and Alembic's version table go there (a lent connection included)."""
    exists = query(f"SELECT to_regnamespace('\"{schema}\"') IS NOT NULL")[0][0]
    if not exists:
        query(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    query(f'SET search_path TO "{schema}"')


@contextlib.contextmanager
def _guarded_statements(
    connection: Any, key: int, holder: int, schema: str, settings: MigrationEnvironment
) -> Iterator[None]:
    """Before every statement on this engine's connections: is the lock still held? Then the
    safety analysis, when it is on."""
    from sqlalchemy import event

    from alembic_prestart.safety.guard import SafetyGuard

    engine = connection.engine
    check = held_by_sql(key, holder)
    guard = SafetyGuard.for_run(settings.lint, schema=schema)
    # Connections running one of our own queries: those go through the same hook. Per
    # connection: env.py may run a task of its own (a watcher of who blocks the migration)
    # on another connection of the engine while a migration statement waits on this hook,
    # and that statement must still be checked.
    busy: set[int] = set()

    def before_execute(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if id(conn) in busy:
            return
        busy.add(id(conn))
        try:
            if not driver_rows(conn, check)[0][0]:
                raise command_error(
                    f"the migration lock on schema {schema} was lost (its session, pid "
                    f"{holder}, no longer holds it): stopped before the next statement; "
                    "the revision under way was rolled back"
                )
            guard.judge(conn, statement)
        finally:
            busy.discard(id(conn))

    event.listen(engine, "before_cursor_execute", before_execute)
    logger.info(
        "%s: lock checked before each statement, safety analysis %s",
        GUARD_INSTALLED,
        settings.lint if guard.active else "off",
    )
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before_execute)
        guard.finish()


def driver_rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    """`sql`'s rows, asked on the DBAPI connection itself: no SQLAlchemy event (so neither the
    lock check nor the guard) runs for the launcher's own questions."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


@contextlib.contextmanager
def sqlite_file_lock(database: Path, *, timeout: float) -> Iterator[None]:
    """An exclusive flock on a file beside the database; the kernel drops it with the process."""
    database.parent.mkdir(parents=True, exist_ok=True)
    lock_path = database.with_name(database.name + ".migration-lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        waiting = Waiting(str(lock_path), timeout, logger)
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                try:
                    time.sleep(waiting.pause(lambda: "another migrator"))
                except LockTimeout as error:
                    raise command_error(f"{error}; nothing was applied") from None
        logger.info("migration lock acquired (%s)", lock_path.name)
        yield
    finally:
        os.close(descriptor)


__all__ = ["async_migration_lock", "migration_lock", "sqlite_file_lock"]
