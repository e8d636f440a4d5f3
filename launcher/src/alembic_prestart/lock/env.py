"""The migration lock for env.py: the launcher's one public helper for Alembic environments.

Alembic's `generic` template becomes safe with two lines::

    from alembic_prestart import migration_lock
    ...
    with connectable.connect() as connection:
        with migration_lock(connection):          # added
            context.configure(connection=connection, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()

and its `async` template likewise, with `async with async_migration_lock(connection):` around
`await connection.run_sync(do_run_migrations)`.

Under the launcher, the lock is already held by the launcher's own session (its server pid is
in MIGRATION_LOCK_HOLDER): the helper checks in pg_locks that this very session holds it and
migrates under it. Run bare (`alembic upgrade head`), it takes the lock itself, waiting at most
`timeout` seconds (default: MIGRATION_TIMEOUT, else 600) and failing as Alembic's own errors do
(`FAILED: ...`, exit 255) when the time is up. The waiting policy is lock.core's, shared with
the launcher.

Proven by tests/foreign/test_foreign_project.py (Alembic's generic and async templates with
the two lines, on PostgreSQL and SQLite) and tests/launcher/test_migration_lock.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from alembic_prestart.lock.core import (
    LOCK_HOLDER_ENV,
    LockTimeout,
    Waiting,
    acquire_postgres,
    advisory_lock_key,
    holder_sql,
    unlock_sql,
)

DEFAULT_TIMEOUT_SECONDS = 600.0
# Alembic's templates configure the `alembic` logger at INFO and the root at WARN: lines logged
# under it are seen by whoever runs `alembic upgrade head`.
logger = logging.getLogger("alembic.migration_lock")


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    try:
        return float(os.environ.get("MIGRATION_TIMEOUT") or DEFAULT_TIMEOUT_SECONDS)
    except ValueError:
        return DEFAULT_TIMEOUT_SECONDS


def _failed(error: LockTimeout) -> Exception:
    try:
        from alembic.util import CommandError  # Alembic prints it as one FAILED: line
    except ImportError:  # pragma: no cover - env.py always runs under Alembic
        return error
    return CommandError(f"{error}; nothing was applied")


@contextlib.contextmanager
def migration_lock(
    connection: Any, *, schema: str | None = None, timeout: float | None = None
) -> Iterator[None]:
    """Hold the migration lock for the block (a SQLAlchemy Connection, sync).

    `schema` is the one holding alembic_version (default: DATABASE_SCHEMA, else the session's
    current schema); the launcher keys its lock the same way.
    """
    dialect = connection.dialect.name
    if dialect == "sqlite":
        database = connection.engine.url.database
        if not database or database == ":memory:":
            yield
            return
        with sqlite_file_lock(Path(database).resolve(), timeout=_timeout(timeout)):
            yield
        return
    if dialect != "postgresql":
        logger.warning("no migration lock for the %s dialect: migrating without one", dialect)
        yield
        return
    with _postgres_lock(connection, schema, _timeout(timeout)):
        yield


@contextlib.asynccontextmanager
async def async_migration_lock(
    connection: Any, *, schema: str | None = None, timeout: float | None = None
) -> AsyncIterator[None]:
    """The same for a SQLAlchemy AsyncConnection: the lock is taken through its sync face."""
    stack = contextlib.ExitStack()

    def enter(sync_connection: Any) -> None:
        stack.enter_context(migration_lock(sync_connection, schema=schema, timeout=timeout))

    await connection.run_sync(enter)
    try:
        yield
    finally:
        await connection.run_sync(lambda _sync: stack.close())


@contextlib.contextmanager
def _postgres_lock(connection: Any, schema: str | None, timeout: float) -> Iterator[None]:
    began_here = not connection.in_transaction()

    def query(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in connection.exec_driver_sql(sql)]

    def end_our_transaction() -> None:
        # Alembic must find the connection outside a transaction, or it treats the migration as
        # part of an outer one it never commits; a session-level lock survives the commit.
        if began_here and connection.in_transaction():
            connection.commit()

    database = query("SELECT current_database()")[0][0]
    schema = schema or os.environ.get("DATABASE_SCHEMA") or query("SELECT current_schema()")[0][0]
    key = advisory_lock_key(database, schema)
    held_by = os.environ.get(LOCK_HOLDER_ENV, "").strip()
    holder = query(holder_sql(key))
    if held_by and holder and str(holder[0][0]) == held_by:
        logger.info(
            "migration lock on schema %s held for this run by pid %s, the launcher's session",
            schema,
            held_by,
        )
        end_our_transaction()
        yield
        return
    try:
        acquire_postgres(query, key, Waiting(f"schema {schema}", timeout, logger))
    except LockTimeout as error:
        end_our_transaction()
        raise _failed(error) from None
    end_our_transaction()
    logger.info("migration lock acquired on schema %s", schema)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a lost session has released it already
            if connection.in_transaction():
                connection.rollback()
            query(unlock_sql(key))
            end_our_transaction()


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
                    raise _failed(error) from None
        logger.info("migration lock acquired (%s)", lock_path.name)
        yield
    finally:
        os.close(descriptor)
