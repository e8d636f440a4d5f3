"""The users store: the SQL of service/sql.py (compiled from service/tables.py, see
service/statements.py) on the database driver itself.

One statement per operation, each atomic on its own, so every connection runs in autocommit:
one round trip per request, no BEGIN/COMMIT around it. PostgreSQL goes through an asyncpg pool
(its prepared-statement cache makes each statement a single Bind/Execute); SQLite through two
aiosqlite connections per worker, one reading and one committing the writes in groups. Rows
are mapped by column name.

A taken email is `EmailTaken` (409, from the unique constraint, not a racy pre-check). Every
failure of the database is a `DatabaseFailure` naming its cause (service/failures.py), with the
driver's message redacted; an error of the SQL or its arguments (a bug) is left as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic_prestart.db.scram import bound_password_hashing
from alembic_prestart.db.url import DatabaseURL

from service import sql
from service.failures import (
    Cause,
    Redactor,
    StorageFull,
    asyncpg_failure,
    failure,
    sqlite_cause,
)
from service.settings import Settings

APPLICATION_NAME = "service"
VERSIONS_SQL = "SELECT version_num FROM alembic_version"  # Alembic's table, not ours

User = dict[str, Any]


@dataclass(frozen=True)
class Statement:
    """One compiled statement: its SQL text and the order its named parameters go in."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    def args(self, params: dict[str, Any]) -> tuple[Any, ...]:
        """The driver's positional arguments for these named parameters."""
        defaults = self.defaults
        return tuple([params[name] if name in params else defaults[name] for name in self.names])


def statements(dialect: str) -> dict[str, Statement]:
    """The store's statements for one dialect ("postgresql" or "sqlite")."""
    return {
        name: Statement(text["sql"], tuple(text["names"]), text["defaults"])
        for name, text in sql.STATEMENTS[dialect].items()
    }


def update_statement(columns: Iterable[str]) -> str:
    """The name of the UPDATE that sets exactly these columns: service/statements.py compiles
    one for each set of columns a PATCH may send, so the SET list is what was sent."""
    return "update:" + ",".join(sorted(columns))


@dataclass(frozen=True)
class PoolState:
    """The store's connections, for the metrics page."""

    backend: str
    size: int  # open connections
    in_use: int | None  # None where the backend cannot tell
    maximum: int


class EmailTaken(Exception):
    """The email belongs to another user."""


class UserStore(ABC):
    """The operations, written once; each backend supplies `_fetch`, `_versions` and `close`."""

    @abstractmethod
    async def _fetch(
        self, statement: str, params: dict[str, Any], *, idempotent: bool
    ) -> list[User]:
        """The rows of one statement as dicts keyed by column name; EmailTaken or a
        DatabaseFailure. `idempotent` statements may be retried on a connection the server
        dropped."""

    @abstractmethod
    async def _versions(self) -> list[str]: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def pool_state(self) -> PoolState: ...

    async def get(self, user_id: int) -> User | None:
        rows = await self._fetch("get", {"id": user_id}, idempotent=True)
        return rows[0] if rows else None

    async def create(self, values: Mapping[str, Any]) -> User:
        """Insert a user; `values` holds every written column (service/statements.py WRITTEN)."""
        return (await self._fetch("create", dict(values), idempotent=False))[0]

    async def list(self, after: int, limit: int) -> list[User]:
        return await self._fetch("list", {"after": after, "limit": limit}, idempotent=True)

    async def update(self, user_id: int, changes: Mapping[str, Any]) -> User | None:
        """Set the columns in `changes` (None sets NULL) and no other; None if no such user."""
        if not changes:
            return await self.get(user_id)
        params = {**changes, "id": user_id}
        rows = await self._fetch(update_statement(changes), params, idempotent=False)
        return rows[0] if rows else None

    async def delete(self, user_id: int) -> bool:
        return bool(await self._fetch("delete", {"id": user_id}, idempotent=False))

    async def schema_versions(self) -> set[str]:
        return set(await self._versions())


async def open_store(settings: Settings) -> UserStore:
    if settings.url.is_sqlite:
        return await SqliteStore.open(settings)
    return PostgresStore(settings)


async def _nothing_to_reset(_connection: Any) -> None:
    return None


class PostgresStore(UserStore):
    def __init__(self, settings: Settings) -> None:
        import asyncpg

        # A server cannot make a connect hash the password for minutes on the event loop.
        bound_password_hashing()
        self._asyncpg = asyncpg
        self._statements = statements("postgresql")
        self._url: DatabaseURL = settings.url
        self._timeout = settings.database_timeout
        # Created on first use, not at start-up: the service starts (and answers /healthz,
        # and 503 elsewhere) while the database is down, and recovers by itself.
        self._pool_args = {
            "dsn": settings.url.asyncpg_dsn(),
            "min_size": 0,
            "max_size": settings.database_pool_size,
            "timeout": settings.database_timeout,
            # Every statement here is a single-row lookup or write: a server that takes longer
            # than this is not answering, and the request gets its 503 within that bound.
            "command_timeout": settings.database_timeout,
            "server_settings": {
                "search_path": settings.database_schema,
                "application_name": f"{APPLICATION_NAME} pid={os.getpid()}",
            },
            # asyncpg's default reset costs a round trip per request (RESET ALL, UNLISTEN,
            # advisory unlock); these connections never change session state, nor stay in a
            # transaction, so there is nothing to reset.
            "reset": _nothing_to_reset,
        }
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._redact = Redactor(settings.url.url)
        # After one of these the connection is in doubt (broken, or its protocol state
        # confused, as asyncpg's InternalClientError during a fast server stop): it is closed
        # rather than handed to the next request.
        self._breaking_errors = (
            OSError,  # TimeoutError included
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        )

    def pool_state(self) -> PoolState:
        maximum = self._pool_args["max_size"]
        assert isinstance(maximum, int)
        if self._pool is None:  # created on the first request
            return PoolState("postgresql", 0, 0, maximum)
        size = self._pool.get_size()
        return PoolState("postgresql", size, size - self._pool.get_idle_size(), maximum)

    async def _get_pool(self) -> Any:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await self._asyncpg.create_pool(**self._pool_args)
        return self._pool

    async def _fetch(
        self, statement: str, params: dict[str, Any], *, idempotent: bool
    ) -> list[User]:
        compiled = self._statements[statement]
        rows = await self._run(compiled.sql, compiled.args(params), idempotent=idempotent)
        return [dict(row) for row in rows]  # asyncpg's Record is keyed by column name

    async def _versions(self) -> list[str]:
        return [row["version_num"] for row in await self._run(VERSIONS_SQL, (), idempotent=True)]

    async def _run(self, query: str, args: tuple[Any, ...], *, idempotent: bool) -> list[Any]:
        # A read that met a connection the server had dropped (a restart) is retried once on a
        # fresh connection, so a recovered database answers at once instead of with a 503.
        # Timeouts are not retried: that would double the wait on a server that hangs.
        for attempt in (1, 2):
            connected = False
            try:
                pool = self._pool or await self._get_pool()
                # No acquire timeout of its own: connecting is bounded by `timeout`, a query by
                # `command_timeout`, and an asyncio timeout per request costs measurable time.
                async with pool.acquire() as connection:
                    connected = True
                    try:
                        rows: list[Any] = await connection.fetch(query, *args)
                    except self._breaking_errors:
                        # A connection asyncpg saw close is already out of the pool (and its
                        # proxy says so with an InterfaceError).
                        with contextlib.suppress(self._asyncpg.InterfaceError):
                            connection.terminate()
                        raise
                    return rows
            except self._asyncpg.UniqueViolationError:
                raise EmailTaken from None
            except Exception as error:
                found = asyncpg_failure(error, connected=connected, redact=self._redact)
                if found is None:
                    raise  # the SQL or its arguments: a bug, with its traceback
                if found.cause is Cause.CONNECTION_LOST and idempotent and attempt == 1:
                    continue
                raise found from None
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            await asyncio.wait_for(self._pool.close(), self._timeout)


WAL_SIZE_LIMIT = 4 * 1024 * 1024


class _Write:
    """One write waiting for its commit, and the request awaiting its outcome."""

    __slots__ = ("args", "future", "sql")

    def __init__(self, sql: str, args: tuple[Any, ...]) -> None:
        self.sql = sql
        self.args = args
        self.future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    def settle(self, rows: list[Any] | None = None, error: BaseException | None = None) -> None:
        if self.future.done():  # the request was cancelled (its client left)
            return
        if isinstance(error, asyncio.CancelledError):  # the worker is shutting down
            self.future.cancel()
        elif error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(rows or [])


class SqliteStore(UserStore):
    """Two connections to the file in WAL mode, each on a thread of its own (aiosqlite): one
    for reads, one for writes. WAL lets the reads proceed while a write (this worker's, another
    worker's, or the launcher's migration) holds the file's one write lock.

    Writes are committed in groups: a write that arrives while another is being committed
    waits, and those that gathered meanwhile are committed together, one transaction and one
    fsync for all of them (PostgreSQL does the same with concurrent commits). Durability is
    unchanged: synchronous FULL, and no answer leaves before its write is on disk. Each write
    is still atomic on its own: one that fails (a taken email) is undone alone, SQLite
    statements being atomic inside a transaction, and the others commit; a failure that ends
    the whole transaction (a full disk) or its commit is the answer of every write in it.

    Several workers share the file, and SQLite lets one connection write at a time. Its own
    busy handler is unfair: a waiting writer sleeps longer and longer between tries (1, 2, 5
    ... up to 100 ms), so one that has already waited long sleeps through the moments the lock
    is free while the others keep taking it; and it sleeps on the connection's thread, so the
    worker's other statements queue behind it. Measured with 4 workers: POST p99 4.4-4.7 s,
    and 503s after the 5 s busy timeout, where 1 worker had p99 60 ms.

    So SQLite does not wait at all (busy_timeout 0): a write that finds the lock taken is
    retried after a short random pause on the event loop, every waiter at the same pace
    however long it has waited, while the reads go on; a request gives up (503) only after
    `database_timeout`. A group takes the write lock as it starts (BEGIN IMMEDIATE), as a lone
    write in autocommit does: a writer never fails half-way on a stale snapshot.
    """

    RETRY_PAUSE_SECONDS = (0.0002, 0.002)

    def __init__(self, reader: Any, writer: Any, *, timeout: float) -> None:
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self._statements = statements("sqlite")
        # SQLite hands DateTime columns back as text (CURRENT_TIMESTAMP: UTC, no offset).
        self._datetimes = tuple(sql.DATETIME_COLUMNS)
        self._checkpoint_owed = False  # see _give_back_the_wal
        self._waiting: list[_Write] = []  # writes for the next group
        self._committer: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, settings: Settings) -> SqliteStore:
        path = settings.url.sqlite_path
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(path, setup_timeout=settings.database_timeout)
        try:
            reader = await _connect(path, setup_timeout=settings.database_timeout)
        except BaseException:
            await writer.close()
            raise
        return cls(reader, writer, timeout=settings.database_timeout)

    def pool_state(self) -> PoolState:
        return PoolState("sqlite", 2, None, 2)

    async def _fetch(
        self, statement: str, params: dict[str, Any], *, idempotent: bool
    ) -> list[User]:
        compiled = self._statements[statement]
        args = compiled.args(params)
        # The idempotent statements are the reads.
        if idempotent:
            rows = await self._execute(self._reader, compiled.sql, args)
            if self._checkpoint_owed:
                await self._give_back_the_wal(self._reader)
        else:
            rows = await self._write(compiled.sql, args)
        return [self._user(row) for row in rows]

    def _user(self, row: sqlite3.Row) -> User:
        user = dict(zip(row.keys(), row, strict=True))
        for name in self._datetimes:
            value = user.get(name)
            if value is None:
                continue
            if isinstance(value, str):
                value = datetime.fromisoformat(value)
            if value.tzinfo is None:
                user[name] = value.replace(tzinfo=UTC)
        return user

    async def _versions(self) -> list[str]:
        return [row["version_num"] for row in await self._execute(self._reader, VERSIONS_SQL, ())]

    async def _write(self, query: str, args: tuple[Any, ...]) -> list[Any]:
        write = _Write(query, args)
        self._waiting.append(write)
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_while_waiting())
        return await write.future

    async def _commit_while_waiting(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    await self._commit(group)
                except BaseException as error:  # never leave a request waiting
                    for write in group:
                        write.settle(error=error)
                    if not isinstance(error, Exception):
                        raise
        finally:
            self._committer = None

    async def _commit(self, group: list[_Write]) -> None:
        """Commit a group of writes; each write's future gets its rows or its error. The WAL
        is given back right after a full disk, and after each commit while that is owed."""
        if len(group) == 1:
            failed = await self._commit_alone(group[0])
        else:
            failed = await self._commit_together(group)
        if isinstance(failed, StorageFull) or (failed is None and self._checkpoint_owed):
            await self._give_back_the_wal(self._writer)

    async def _commit_alone(self, write: _Write) -> Exception | None:
        """One statement in autocommit; its failure, or None once committed."""
        try:
            write.settle(await self._execute(self._writer, write.sql, write.args))
        except Exception as error:
            write.settle(error=error)
            return error
        return None

    async def _commit_together(self, group: list[_Write]) -> Exception | None:
        """One transaction for all; what failed it as a whole, or None once committed."""
        try:
            await self._execute(self._writer, "BEGIN IMMEDIATE", ())
        except Exception as error:
            for write in group:
                write.settle(error=error)
            return error
        done: list[tuple[_Write, list[Any]]] = []
        ended: Exception | None = None  # what ended the whole transaction
        for write in group:
            if ended is not None:
                write.settle(error=ended)
                continue
            try:
                done.append((write, await self._execute(self._writer, write.sql, write.args)))
            except Exception as error:
                write.settle(error=error)
                if not self._writer.in_transaction:  # SQLite rolled all of it back
                    ended = error
        if ended is None:
            try:
                await self._execute(self._writer, "COMMIT", ())
            except Exception as error:
                ended = error
                with contextlib.suppress(sqlite3.Error, ValueError):
                    if self._writer.in_transaction:
                        await self._writer.execute_fetchall("ROLLBACK", ())
        for write, rows in done:
            write.settle(rows, error=ended)
        return ended

    async def _execute(self, connection: Any, query: str, args: tuple[Any, ...]) -> list[Any]:
        """One statement; EmailTaken, a DatabaseFailure, or (a bug) the driver's own error.
        A statement that finds the write lock taken is tried again until the deadline."""
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return list(await connection.execute_fetchall(query, args))
            except sqlite3.IntegrityError as error:
                if getattr(error, "sqlite_errorcode", 0) == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
                    raise EmailTaken from None
                raise  # NOT NULL or CHECK: the request validation let through a bad value
            except sqlite3.Error as error:
                cause = sqlite_cause(error)
                if cause is None:
                    raise  # the SQL or its arguments: a bug, with its traceback
                detail = f"{getattr(error, 'sqlite_errorname', type(error).__name__)}: {error}"
                if cause is Cause.BUSY:
                    if time.monotonic() < deadline:
                        await asyncio.sleep(random.uniform(*self.RETRY_PAUSE_SECONDS))
                        continue
                    detail += f" for {self._timeout:g} s"
                raise failure(cause, detail) from None
            except ValueError as error:
                if str(error) not in ("Connection closed", "no active connection"):
                    raise  # not aiosqlite saying the store is closed
                raise failure(Cause.CONNECTION_LOST, "the SQLite connection is closed") from None

    async def _give_back_the_wal(self, connection: Any) -> None:
        """On a full disk, move what the WAL holds into the database and truncate it: on a
        volume smaller than the auto-checkpoint threshold (1000 pages) the WAL would otherwise
        never be checkpointed, and the space it holds never freed, disk freed or not. On a
        disk still full the checkpoint itself may fail: it is owed, and tried again after each
        statement that succeeds (the disk has freed) until it has been done."""
        self._checkpoint_owed = True
        with contextlib.suppress(sqlite3.Error, ValueError):
            rows = await connection.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)", ())
            busy = next(iter(rows))[0] if rows else 1  # (busy, wal pages, checkpointed)
            self._checkpoint_owed = bool(busy)

    async def close(self) -> None:
        if self._committer is not None:  # the writes already under way are answered first
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._committer), self._timeout)
        await self._reader.close()
        await self._writer.close()


async def _connect(path: Path, *, setup_timeout: float) -> Any:
    """One connection in autocommit, WAL, synchronous FULL (a write is on disk before its
    answer leaves), rows keyed by column name.

    Workers starting together on a fresh file each switch it to WAL, and one finds it locked
    by another: SQLite's busy handler waits for most locks, but a switch that would deadlock
    with another is refused at once, so it is tried again until `setup_timeout`. Once set up,
    SQLite waits no more (busy_timeout 0): the store retries, fairly (see SqliteStore).
    """
    import aiosqlite

    connection = await aiosqlite.connect(path, timeout=setup_timeout, isolation_level=None)
    try:
        connection.row_factory = sqlite3.Row
        deadline = time.monotonic() + setup_timeout
        while True:
            try:
                await connection.execute_fetchall("PRAGMA journal_mode=WAL", ())  # to the end
                break
            except sqlite3.OperationalError as error:
                busy = getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(random.uniform(0.001, 0.01))
        await connection.execute_fetchall("PRAGMA synchronous=FULL", ())
        # After each checkpoint the WAL file is cut back to this size instead of keeping the
        # largest it ever grew to.
        await connection.execute_fetchall(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}", ())
        await connection.execute_fetchall("PRAGMA busy_timeout=0", ())
    except BaseException:
        await connection.close()
        raise
    return connection
