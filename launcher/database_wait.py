"""Wait until the database accepts connections, or fail fast when waiting cannot help.

Connection-level failures (refused, reset, name not resolved, server starting up, timeouts)
are retried with capped exponential backoff; authentication failures and a missing database
are configuration errors and fail at once. The first try uses the standard-library client in
launcher/pgwire.py; whenever it is unsure, asyncpg (imported only then) decides.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from launcher import logs, pgwire
from launcher.errors import EXIT_CONFIG, EXIT_DATABASE_UNAVAILABLE, SupervisorError
from service.database_url import DatabaseURL

FIRST_DELAY_SECONDS = 0.1
MAX_DELAY_SECONDS = 2.0
PROGRESS_EVERY_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5.0


class RetryableError(Exception):
    """Waiting may help: the server is not (yet) reachable."""


@dataclass(frozen=True)
class DatabaseState:
    """What one successful connection saw: the revisions in the version table, if any."""

    versions: tuple[str, ...] | None  # None: no version table yet


def wait_for_database(
    url: DatabaseURL,
    *,
    schema: str,
    timeout: float,
    application_name: str,
    should_stop: Callable[[], bool] = lambda: False,
) -> DatabaseState:
    """Connect within `timeout` seconds and read the version table, or raise SupervisorError."""
    if url.is_sqlite:
        return _read_sqlite(url)
    try:
        versions = pgwire.read_versions(
            url,
            schema=schema,
            timeout=min(2.0, max(timeout, 0.5)),
            application_name=application_name,
        )
        return DatabaseState(versions=versions)
    except pgwire.Unsupported:
        pass  # asyncpg below gives the authoritative answer, retries and error messages
    import asyncio

    started = time.monotonic()
    delay = FIRST_DELAY_SECONDS
    last_progress = float("-inf")
    attempts = 0
    while not should_stop():
        attempts += 1
        remaining = timeout - (time.monotonic() - started)
        try:
            return asyncio.run(
                _read_postgres(
                    url,
                    schema=schema,
                    connect_timeout=max(0.5, min(CONNECT_TIMEOUT_SECONDS, remaining)),
                    application_name=application_name,
                )
            )
        except RetryableError as error:
            elapsed = time.monotonic() - started
            if elapsed + delay >= timeout:
                raise SupervisorError(
                    f"database unreachable at {url.host}:{url.port} for {timeout:g}s "
                    f"({attempts} attempts): {error}",
                    EXIT_DATABASE_UNAVAILABLE,
                ) from None
            if time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS:
                logs.logger.info(
                    "waiting for the database at %s:%s (%.0fs of %gs): %s",
                    url.host,
                    url.port,
                    elapsed,
                    timeout,
                    error,
                )
                last_progress = time.monotonic()
            _sleep_unless_stopped(delay, should_stop)
            delay = min(delay * 2, MAX_DELAY_SECONDS)
    return DatabaseState(versions=None)


def _sleep_unless_stopped(seconds: float, should_stop: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while not should_stop() and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))


async def _read_postgres(
    url: DatabaseURL, *, schema: str, connect_timeout: float, application_name: str
) -> DatabaseState:
    import asyncpg  # lazily: only PostgreSQL needs it

    try:
        connection = await asyncpg.connect(
            url.asyncpg_dsn(),
            timeout=connect_timeout,
            server_settings={"application_name": application_name},
        )
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
        raise SupervisorError(
            f"authentication failed for user {url.username or '(default)'!r} at "
            f"{url.host}:{url.port}: check the credentials in DATABASE_URL",
            EXIT_CONFIG,
        ) from None
    except asyncpg.InvalidCatalogNameError:
        raise SupervisorError(
            f"database {url.database!r} does not exist at {url.host}:{url.port}", EXIT_CONFIG
        ) from None
    except (asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as error:
        raise RetryableError(_first_line(error)) from None
    except socket.gaierror as error:
        raise RetryableError(f"cannot resolve host {url.host!r} ({error.strerror})") from None
    except (TimeoutError, OSError, asyncpg.ConnectionDoesNotExistError) as error:
        raise RetryableError(_describe_os_error(error)) from None
    except asyncpg.PostgresError as error:
        raise SupervisorError(
            f"the database refused the connection: {_first_line(error)}", EXIT_CONFIG
        ) from None
    try:
        table = f'"{schema}".alembic_version'
        exists = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
        if not exists:
            return DatabaseState(versions=None)
        rows = await connection.fetch(f"SELECT version_num FROM {table}")
        return DatabaseState(versions=tuple(sorted(row[0] for row in rows)))
    except (OSError, asyncpg.ConnectionDoesNotExistError) as error:
        raise RetryableError(_describe_os_error(error)) from None
    except asyncpg.PostgresError as error:  # e.g. no USAGE on the schema for this role
        raise SupervisorError(
            f"cannot read {schema}.alembic_version as {url.username or '(default)'!r}: "
            f"{_first_line(error)}",
            EXIT_CONFIG,
        ) from None
    finally:
        await connection.close(timeout=2)


def _read_sqlite(url: DatabaseURL) -> DatabaseState:
    import sqlite3  # the standard library's; imported only for SQLite

    path = url.sqlite_path
    if not path.exists():
        return DatabaseState(versions=None)
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as connection:
            exists = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
            ).fetchone()
            if not exists:
                return DatabaseState(versions=None)
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as error:
        raise SupervisorError(f"cannot read SQLite database {path}: {error}", EXIT_CONFIG) from None
    return DatabaseState(versions=tuple(sorted(row[0] for row in rows)))


def _describe_os_error(error: BaseException) -> str:
    if isinstance(error, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return "connection timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError) and error.errno is not None:
        return os.strerror(error.errno).lower()
    return _first_line(error) or type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
