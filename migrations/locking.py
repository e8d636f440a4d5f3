"""One migrator at a time: a PostgreSQL advisory lock, or a file lock beside a SQLite database.

Both locks belong to something the operating system or the server cleans up when the holder
dies (a session, an open file), so a crashed migrator never leaves a lock to remove by hand.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from launcher.lock_key import advisory_lock_key, holder_query

logger = logging.getLogger("migrations.lock")

POLL_INTERVAL_SECONDS = 0.25
LOG_EVERY_SECONDS = 5.0

_BLOCKERS_QUERY = text(
    """
    SELECT pid, application_name, state, left(regexp_replace(query, '\\s+', ' ', 'g'), 120)
    FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(:pid))
    """
)


@dataclass(frozen=True)
class Session:
    """Another PostgreSQL session, as an operator would look it up in pg_stat_activity."""

    pid: int
    application_name: str
    state: str | None
    query: str | None = None

    def describe(self) -> str:
        text_ = f"pid {self.pid} (application_name {self.application_name or '(none)'!r}"
        if self.state:
            text_ += f", {self.state}"
        if self.query:
            text_ += f", last query {self.query!r}"
        return text_ + ")"


@asynccontextmanager
async def postgres_migration_lock(
    engine: AsyncEngine, *, schema: str, held_by: str | None = None
) -> AsyncIterator[AsyncConnection]:
    """Hold a session-level advisory lock on a dedicated autocommit connection.

    It polls pg_try_advisory_lock() rather than blocking in pg_advisory_lock(): a session
    blocked inside the latter can deadlock against CREATE INDEX CONCURRENTLY run by the holder.
    `held_by` is the server pid of a session (the launcher's) said to hold the lock for us
    already: if that session really does, we migrate under its lock; otherwise we take it.
    """
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        database = (await connection.execute(text("SELECT current_database()"))).scalar_one()
        key = advisory_lock_key(database, schema)
        if held_by:
            holder = await _lock_holder(connection, key)
            if holder is not None and str(holder.pid) == held_by.strip():
                logger.info(
                    "migration lock on schema %s held for this run by %s",
                    schema,
                    holder.describe(),
                )
                yield connection
                return
        started = time.monotonic()
        last_log = float("-inf")
        try_lock = text("SELECT pg_try_advisory_lock(:key)")
        while not (await connection.execute(try_lock, {"key": key})).scalar_one():
            now = time.monotonic()
            if now - last_log >= LOG_EVERY_SECONDS:
                holder = await _lock_holder(connection, key)
                logger.info(
                    "waiting for the migration lock on schema %s, held by %s, for %.0fs",
                    schema,
                    holder.describe() if holder else "a session that just let it go",
                    now - started,
                )
                last_log = now
            await asyncio.sleep(POLL_INTERVAL_SECONDS)
        logger.info("migration lock acquired on schema %s", schema)
        try:
            yield connection
        finally:
            # Closing the session would release it too; unlocking says so explicitly.
            with suppress(Exception):
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


async def _lock_holder(connection: AsyncConnection, key: int) -> Session | None:
    row = (await connection.execute(text(holder_query(key)))).first()
    return Session(pid=row[0], application_name=row[1], state=row[2]) if row else None


class BlockerWatch:
    """Remembers who blocks a backend, so a lock timeout can name the session behind it."""

    def __init__(self, connection: AsyncConnection, backend_pid: int) -> None:
        self._connection = connection
        self._pid = backend_pid
        self.last_seen: list[Session] = []

    async def run(self) -> None:
        while True:
            rows = (await self._connection.execute(_BLOCKERS_QUERY, {"pid": self._pid})).all()
            if rows:
                self.last_seen = [Session(*row) for row in rows]
            await asyncio.sleep(POLL_INTERVAL_SECONDS)


@contextmanager
def sqlite_migration_lock(database: Path) -> Iterator[None]:
    """An exclusive flock on a file beside the database; the kernel drops it with the process."""
    database.parent.mkdir(parents=True, exist_ok=True)
    lock_path = database.with_name(database.name + ".migration-lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        started = time.monotonic()
        last_log = float("-inf")
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now - last_log >= LOG_EVERY_SECONDS:
                    logger.info(
                        "waiting for the migration lock %s for %.0fs", lock_path, now - started
                    )
                    last_log = now
                time.sleep(POLL_INTERVAL_SECONDS)
        logger.info("migration lock acquired (%s)", lock_path.name)
        yield
    finally:
        os.close(descriptor)
