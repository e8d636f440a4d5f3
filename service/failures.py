"""Database failures: what each driver error is called, for the client and for the log.

Every failure of the database while serving becomes one `DatabaseFailure`, which the app answers
(service/errors.py) with the status and the cause named here and logs in one line, without a
traceback. An error that is not the database failing (the service's own SQL or arguments being
wrong: a bug) is left alone, to be a 500 with its traceback.

The log line carries the driver's message, redacted: asyncpg reads a URL whose password holds an
unencoded / ? # or @ as a different host, port, database or parameter, and then names those
pieces of the password in its errors. So every text is cleared of the URL's password, of its
percent-decoded form and of the pieces a URL parser cuts it into; and the text of an error
asyncpg raised while parsing the URL is never shown at all.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from enum import StrEnum
from urllib.parse import parse_qsl, unquote

from alembic_prestart.db.scram import refused_iterations
from alembic_prestart.db.url import redact_urls_in


class Cause(StrEnum):
    """What the client is told; the log line says more."""

    UNREACHABLE = "unreachable"  # no connection: refused, no route, starting up, shutting down
    CONNECTION_LOST = "connection lost"  # the connection broke during the request
    TIMED_OUT = "timed out"
    DROPPED = "dropped or missing"  # the database does not exist (any more)
    NOT_MIGRATED = "not migrated"  # a table or column the code needs does not exist
    ACCESS_DENIED = "access denied"  # authentication failed, or no privilege
    OVERLOADED = "overloaded"  # too many connections, out of memory
    BUSY = "busy"  # a lock not granted in time, a deadlock, a serialization failure
    READ_ONLY = "read-only"  # a standby, or a read-only database file
    MISCONFIGURED = "misconfigured"  # the database URL cannot be used
    STORAGE_FULL = "storage full"
    SERVER_ERROR = "server error"  # the server failed in a way not named above


# Causes that pass by themselves: the client is told to retry (Retry-After).
TRANSIENT = frozenset(
    {Cause.UNREACHABLE, Cause.CONNECTION_LOST, Cause.TIMED_OUT, Cause.OVERLOADED, Cause.BUSY}
)


class DatabaseFailure(Exception):
    """The database failed the request. str() is the log's detail (already redacted)."""

    status_code = 503
    default_cause = Cause.SERVER_ERROR

    def __init__(self, detail: str, cause: Cause | None = None) -> None:
        super().__init__(detail)
        self.cause = cause or self.default_cause

    @property
    def public_detail(self) -> str:
        """The client's `detail`: the cause, never the driver's text."""
        return f"database unavailable: {self.cause}"

    @property
    def transient(self) -> bool:
        return self.cause in TRANSIENT


class Unavailable(DatabaseFailure):
    """The database cannot serve the request now (the cause says why)."""

    default_cause = Cause.UNREACHABLE


class StorageFull(DatabaseFailure):
    """The database has no room left to write (SQLite SQLITE_FULL, PostgreSQL 53100): 507,
    and no Retry-After: it lasts until someone makes room."""

    status_code = 507
    default_cause = Cause.STORAGE_FULL

    @property
    def public_detail(self) -> str:
        return "database storage full"


class SchemaNotMigrated(DatabaseFailure):
    """A table or column the code needs does not exist: the schema is behind the code."""

    default_cause = Cause.NOT_MIGRATED

    @property
    def public_detail(self) -> str:
        return "database schema not migrated"


# PostgreSQL's SQLSTATE codes (and classes: their first two characters) by cause. Classes 22
# (data), 23 (integrity, but unique: a taken email), 42 (syntax and access rules, but the
# ones below) and the like are the service's own mistakes: left alone.
_SQLSTATES = {
    "08": Cause.CONNECTION_LOST,
    "28": Cause.ACCESS_DENIED,
    "3D000": Cause.DROPPED,
    "57P04": Cause.DROPPED,  # database_dropped
    "3F000": Cause.NOT_MIGRATED,  # invalid_schema_name
    "42P01": Cause.NOT_MIGRATED,  # undefined_table
    "42703": Cause.NOT_MIGRATED,  # undefined_column
    "42501": Cause.ACCESS_DENIED,  # insufficient_privilege
    "53100": Cause.STORAGE_FULL,  # disk_full
    "53": Cause.OVERLOADED,  # too many connections, out of memory
    "54": Cause.OVERLOADED,  # program limits exceeded
    "57014": Cause.TIMED_OUT,  # query_canceled: statement_timeout
    "57P01": Cause.CONNECTION_LOST,  # admin_shutdown: a fast or smart stop
    "57P02": Cause.CONNECTION_LOST,  # crash_shutdown
    "57P03": Cause.UNREACHABLE,  # cannot_connect_now: starting up or shutting down
    "57P05": Cause.CONNECTION_LOST,  # idle_session_timeout
    "25006": Cause.READ_ONLY,  # read_only_sql_transaction: a standby
    "40": Cause.BUSY,  # serialization failure, deadlock
    "55P03": Cause.BUSY,  # lock_not_available
    "58": Cause.SERVER_ERROR,  # system error: I/O
    "XX": Cause.SERVER_ERROR,  # internal error, data corrupted
}


def postgres_cause(sqlstate: str) -> Cause | None:
    """The cause of a PostgreSQL error, or None when the SQL or its arguments are at fault."""
    return _SQLSTATES.get(sqlstate) or _SQLSTATES.get(sqlstate[:2])


def sqlite_cause(error: sqlite3.Error) -> Cause | None:
    """The cause of a SQLite error (busy and unique violations are the store's business),
    or None when the SQL or its arguments are at fault."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF  # the primary result code
    message = str(error)
    if code == sqlite3.SQLITE_FULL:
        return Cause.STORAGE_FULL
    if message.startswith(("no such table", "no such column")):
        return Cause.NOT_MIGRATED
    if code == sqlite3.SQLITE_READONLY:
        return Cause.READ_ONLY
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return Cause.BUSY
    if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_NOTADB):
        return Cause.UNREACHABLE
    if code in (sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
        return Cause.ACCESS_DENIED
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERNAL):
        return Cause.SERVER_ERROR
    if isinstance(error, sqlite3.ProgrammingError) and "closed" in message:
        return Cause.CONNECTION_LOST  # the store is shutting down
    return None


def asyncpg_failure(
    error: Exception, *, connected: bool, redact: Callable[[str], str]
) -> DatabaseFailure | None:
    """What the app answers for an error raised by asyncpg (or the network under it) while
    connecting (`connected` False) or running a statement; None for a bug."""
    import asyncpg  # here, not at the top: a SQLite deployment never loads it

    name = type(error).__name__
    lost = Cause.CONNECTION_LOST if connected else Cause.UNREACHABLE
    if isinstance(error, asyncpg.PostgresError):
        cause = postgres_cause(error.sqlstate or "")
        if cause is None:
            return None
        if cause is Cause.CONNECTION_LOST:
            cause = lost
        return failure(cause, f"{name} {error.sqlstate}: {redact(str(error))}")
    if isinstance(error, ValueError) and not connected:
        # asyncpg could not read the URL. Its message quotes the piece it could not read,
        # which may be a piece of the password: it is never shown.
        return failure(
            Cause.MISCONFIGURED,
            f"{name} from asyncpg reading DATABASE_URL (its message withheld: it may quote the "
            "password); percent-encode any : / ? # @ in the password",
        )
    if (refused := refused_iterations(error)) is not None:
        return failure(Cause.MISCONFIGURED, str(refused))
    if isinstance(error, TimeoutError):
        return failure(Cause.TIMED_OUT, f"{name}: no answer within DATABASE_TIMEOUT")
    # The connection broke, or asyncpg's protocol state did (InternalClientError "cannot
    # switch to state ...; another operation is in progress" as the server stops).
    if isinstance(error, OSError | asyncpg.InterfaceError | asyncpg.InternalClientError):
        return failure(lost, f"{name}: {redact(str(error))}")
    return None


def failure(cause: Cause, detail: str) -> DatabaseFailure:
    """The exception the app answers for this cause."""
    if cause is Cause.STORAGE_FULL:
        return StorageFull(detail)
    if cause is Cause.NOT_MIGRATED:
        return SchemaNotMigrated(detail)
    return Unavailable(detail, cause)


_URL_DELIMITERS = re.compile(r"[/?#@:&=]")
_WORD = r"[A-Za-z0-9_]"


class Redactor:
    """Clears a text of one database URL's password, whole or in the pieces a parser may have
    cut it into (a piece is cleared where it stands as a word of its own, so that a short
    one does not eat every word it happens to be part of)."""

    def __init__(self, url: str) -> None:
        secrets = {s for s in _passwords(url) if s}
        pieces = {p for s in secrets for p in _URL_DELIMITERS.split(s) if p} - secrets
        # Longest first, so that a piece never splits a longer secret before it is cleared.
        whole = sorted(secrets, key=len, reverse=True)
        parts = sorted(pieces, key=len, reverse=True)
        patterns = [re.escape(s) for s in whole]
        patterns += [rf"(?<!{_WORD}){re.escape(p)}(?!{_WORD})" for p in parts]
        self._pattern = re.compile("|".join(patterns)) if patterns else None

    def __call__(self, text: str) -> str:
        text = redact_urls_in(text)
        return self._pattern.sub("***", text) if self._pattern else text


def _passwords(url: str) -> set[str]:
    """The password of the user part (everything between the first : and the last @, as
    the launcher's redaction reads it) and of password= in the query, raw and decoded."""
    found: set[str] = set()
    _scheme, sep, rest = url.partition("://")
    if not sep:
        return found
    userinfo, at, _tail = rest.rpartition("@")
    if at:
        found.add(userinfo.partition(":")[2])
    query = url.partition("?")[2].partition("#")[0]
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key.lower() in ("password", "sslpassword"):
            found.add(value)
    return found | {unquote(secret) for secret in found}
