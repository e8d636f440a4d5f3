"""The users store: a few fixed SQL statements on the database driver itself.

One statement per operation, each atomic on its own, so every connection runs in autocommit:
one round trip per request, no BEGIN/COMMIT around it. PostgreSQL goes through an asyncpg pool
(its prepared-statement cache makes each statement a single Bind/Execute); SQLite through one
aiosqlite connection per worker (SQLite serialises writers anyway). The tables themselves are
described in service/tables.py and created by the migrations.

Every failure that means "the database is not there right now" becomes `Unavailable`, which
the app answers with 503; a taken email becomes `EmailTaken` (the unique constraint, not a
racy pre-check).
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any

from launcher.database_url import DatabaseURL
from service.settings import Settings

APPLICATION_NAME = "service"
_COLUMNS = "id, name, email, created_at"

# Written once with PostgreSQL's $n placeholders; SQLite gets them rewritten to ?.
SQL = {
    "get": f"SELECT {_COLUMNS} FROM users WHERE id = $1",
    "create": f"INSERT INTO users (name, email) VALUES ($1, $2) RETURNING {_COLUMNS}",
    "list": f"SELECT {_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2",
    "update": (
        "UPDATE users SET name = COALESCE($1, name), email = COALESCE($2, email) "
        f"WHERE id = $3 RETURNING {_COLUMNS}"
    ),
    "delete": "DELETE FROM users WHERE id = $1 RETURNING id",
    "versions": "SELECT version_num FROM alembic_version",
}

User = dict[str, Any]


class Unavailable(Exception):
    """The database cannot be reached or gave up; the request may succeed later."""


class EmailTaken(Exception):
    """The email belongs to another user."""


class UserStore(ABC):
    """The operations, written once; each backend supplies `_fetch` (and `close`)."""

    @abstractmethod
    async def _fetch(self, statement: str, *args: Any, idempotent: bool = True) -> list:
        """The rows of one SQL statement; EmailTaken or Unavailable on those failures.
        `idempotent` statements may be retried on a connection the server dropped."""

    @abstractmethod
    async def close(self) -> None: ...

    async def get(self, user_id: int) -> User | None:
        rows = await self._fetch("get", user_id)
        return _user(rows[0]) if rows else None

    async def create(self, name: str, email: str) -> User:
        return _user((await self._fetch("create", name, email, idempotent=False))[0])

    async def list(self, after: int, limit: int) -> list[User]:
        return [_user(row) for row in await self._fetch("list", after, limit)]

    async def update(self, user_id: int, name: str | None, email: str | None) -> User | None:
        rows = await self._fetch("update", name, email, user_id, idempotent=False)
        return _user(rows[0]) if rows else None

    async def delete(self, user_id: int) -> bool:
        return bool(await self._fetch("delete", user_id, idempotent=False))

    async def schema_versions(self) -> set[str]:
        return {row[0] for row in await self._fetch("versions")}


async def open_store(settings: Settings) -> UserStore:
    if settings.url.is_sqlite:
        return await SqliteStore.open(settings)
    return PostgresStore(settings)


def _user(row: Any) -> User:
    created_at = row[3]
    if isinstance(created_at, str):  # SQLite's CURRENT_TIMESTAMP: UTC, without an offset
        created_at = datetime.fromisoformat(created_at)
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return {"id": row[0], "name": row[1], "email": row[2], "created_at": created_at}


async def _nothing_to_reset(_connection: Any) -> None:
    return None


class PostgresStore(UserStore):
    def __init__(self, settings: Settings) -> None:
        import asyncpg

        self._asyncpg = asyncpg
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
        # The errors that mean the server or the connection is gone or full, not that the
        # query is bad: connection exceptions (class 08), too many connections and other
        # resource limits (53), shutdown and starting up (57P), network errors and timeouts.
        self._connection_errors = (
            OSError,
            TimeoutError,
            asyncpg.PostgresConnectionError,
            asyncpg.ConnectionDoesNotExistError,
            asyncpg.InsufficientResourcesError,
            asyncpg.OperatorInterventionError,
        )

    async def _get_pool(self) -> Any:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await self._asyncpg.create_pool(**self._pool_args)
        return self._pool

    async def _fetch(self, statement: str, *args: Any, idempotent: bool = True) -> list:
        # A read that met a connection the server had dropped (a restart) is retried once on a
        # fresh connection, so a recovered database answers at once instead of with a 503.
        # Timeouts are not retried: that would double the wait on a server that hangs.
        for attempt in (1, 2):
            try:
                pool = await self._get_pool()
                # No acquire timeout of its own: connecting is bounded by `timeout`, a query by
                # `command_timeout`, and an asyncio timeout per request costs measurable time.
                async with pool.acquire() as connection:
                    return await connection.fetch(SQL[statement], *args)
            except self._asyncpg.UniqueViolationError:
                raise EmailTaken from None
            except self._asyncpg.ConnectionDoesNotExistError as error:
                if attempt == 2 or not idempotent:
                    raise Unavailable(type(error).__name__) from None
            except self._connection_errors as error:
                raise Unavailable(type(error).__name__) from None
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            await asyncio.wait_for(self._pool.close(), self._timeout)


class SqliteStore(UserStore):
    """One connection in autocommit mode; aiosqlite runs it on a thread of its own."""

    _PLACEHOLDER = re.compile(r"\$\d+")

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._sql = {name: self._PLACEHOLDER.sub("?", text) for name, text in SQL.items()}

    @classmethod
    async def open(cls, settings: Settings) -> SqliteStore:
        import aiosqlite

        path = settings.url.sqlite_path
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(
            path, timeout=settings.database_timeout, isolation_level=None
        )
        # WAL lets readers proceed while another worker or the launcher's migration writes.
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute(f"PRAGMA busy_timeout={int(settings.database_timeout * 1000)}")
        return cls(connection)

    async def _fetch(self, statement: str, *args: Any, idempotent: bool = True) -> list:
        # One local connection: nothing to retry, whatever the statement.
        try:
            async with self._connection.execute(self._sql[statement], args) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.IntegrityError:
            raise EmailTaken from None
        except sqlite3.OperationalError as error:  # locked for longer than busy_timeout
            raise Unavailable(str(error)) from None

    async def close(self) -> None:
        await self._connection.close()
