"""Database failures are named by cause, and their texts keep no piece of the password.

The errors are asyncpg's and sqlite3's own exception classes, as the drivers raise them; the
behaviour against real servers is in test_database_errors.py and test_outages.py.
"""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from service.failures import (
    Cause,
    Redactor,
    SchemaNotMigrated,
    StorageFull,
    Unavailable,
    asyncpg_failure,
    sqlite_cause,
)

URL = "postgresql://app:Zq7/Wx9?Kv3#Pa55@db.example.com:5432/app"
PIECES = ("Zq7", "Wx9", "Kv3", "Pa55")


@pytest.mark.parametrize(
    "text",
    [
        "invalid literal for int() with base 10: 'Zq7'",
        "bad query field: 'Kv3#Pa55@db.example.com:5432/app'",
        'database "Wx9?Kv3#Pa55@db.example.com:5432/app" does not exist',
        "connect to postgresql://app:Zq7/Wx9?Kv3#Pa55@db.example.com:5432/app failed",
        "password was Zq7%2FWx9 or Zq7/Wx9?Kv3#Pa55",
    ],
)
def test_redactor_clears_the_password_and_every_piece_of_it(text: str) -> None:
    """The password, decoded or not, and the pieces a URL parser cuts it into are gone."""
    redacted = Redactor(URL.replace("Zq7/", "Zq7%2F") if "%2F" in text else URL)(text)
    assert not [piece for piece in PIECES if piece in redacted], redacted
    assert "***" in redacted


def test_redactor_keeps_words_a_short_piece_is_part_of() -> None:
    """A piece is cleared where it stands alone, not inside a longer word."""
    redact = Redactor("postgresql://app:ab/le@db/app")
    assert redact("port 'ab' unavailable for table") == "port '***' unavailable for table"


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (
            asyncpg.InvalidPasswordError('password authentication failed for user "app"'),
            "access denied",
        ),
        (
            asyncpg.InvalidAuthorizationSpecificationError('role "x" does not exist'),
            "access denied",
        ),
        (asyncpg.InsufficientPrivilegeError("permission denied for table users"), "access denied"),
        (asyncpg.InvalidCatalogNameError('database "app" does not exist'), "dropped or missing"),
        (asyncpg.UndefinedTableError('relation "users" does not exist'), "not migrated"),
        (asyncpg.UndefinedColumnError('column "nickname" does not exist'), "not migrated"),
        (asyncpg.TooManyConnectionsError("too many connections"), "overloaded"),
        (asyncpg.AdminShutdownError("terminating connection"), "connection lost"),
        (asyncpg.CannotConnectNowError("the database system is shutting down"), "unreachable"),
        (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), "timed out"),
        (asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT"), "read-only"),
        (asyncpg.DeadlockDetectedError("deadlock detected"), "busy"),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), "connection lost"),
        (
            asyncpg.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            ),
            "connection lost",
        ),
        (
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
            "connection lost",
        ),
        (ConnectionResetError(104, "Connection reset by peer"), "connection lost"),
        (TimeoutError(), "timed out"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value,
)
def test_asyncpg_errors_are_named_by_cause(error: Exception, cause: str) -> None:
    """Each driver error while serving is a 503 (507 for a full disk) with its cause."""
    found = asyncpg_failure(error, connected=True, redact=Redactor(URL))
    assert found is not None
    assert (found.status_code, found.cause) == (503, cause)


def test_an_error_before_connecting_is_unreachable_not_lost() -> None:
    """Refused, reset or shut down before a connection was made: unreachable."""
    for error in (ConnectionRefusedError(111, "refused"), asyncpg.CannotConnectNowError("x")):
        found = asyncpg_failure(error, connected=False, redact=Redactor(URL))
        assert found is not None and found.cause == Cause.UNREACHABLE


def test_a_url_asyncpg_cannot_read_is_misconfigured_and_never_quoted() -> None:
    """asyncpg's own parse error quotes a piece of the password: its text is withheld."""
    error = ValueError("invalid literal for int() with base 10: 'Zq7'")
    found = asyncpg_failure(error, connected=False, redact=Redactor(URL))
    assert found is not None and found.cause == Cause.MISCONFIGURED
    assert "Zq7" not in str(found) and "Zq7" not in found.public_detail


def test_disk_full_and_missing_tables_keep_their_own_answers() -> None:
    """53100 is 507 'database storage full'; 42P01 is 503 'database schema not migrated'."""
    full = asyncpg_failure(asyncpg.DiskFullError("no space"), connected=True, redact=str)
    missing = asyncpg_failure(asyncpg.UndefinedTableError("x"), connected=True, redact=str)
    assert isinstance(full, StorageFull) and full.public_detail == "database storage full"
    assert isinstance(missing, SchemaNotMigrated)
    assert missing.public_detail == "database schema not migrated"


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.PostgresSyntaxError("syntax error at or near"),
        asyncpg.NotNullViolationError('null value in column "name"'),
        asyncpg.DataError("invalid input for query argument $1"),
        ValueError("a bug after connecting"),
        KeyError("name"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_the_services_own_mistakes_are_left_alone(error: Exception) -> None:
    """Bad SQL or arguments are bugs: no 503 hides them (they stay a 500 with a traceback)."""
    assert asyncpg_failure(error, connected=True, redact=str) is None


def test_sqlite_errors_are_named_by_cause(tmp_path: pytest.TempPathFactory) -> None:
    """SQLite's own errors, raised by sqlite3: a missing table, a read-only file, a full disk."""
    connection = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError) as missing:
        connection.execute("SELECT * FROM users")
    assert sqlite_cause(missing.value) == Cause.NOT_MIGRATED
    connection.execute("CREATE TABLE t (x TEXT)")
    connection.execute("PRAGMA query_only = 1")
    with pytest.raises(sqlite3.OperationalError) as read_only:
        connection.execute("INSERT INTO t VALUES ('x')")
    assert sqlite_cause(read_only.value) == Cause.READ_ONLY
    with pytest.raises(sqlite3.OperationalError) as syntax:
        connection.execute("SELEC 1")
    assert sqlite_cause(syntax.value) is None
    connection.close()
    with pytest.raises(sqlite3.ProgrammingError) as closed:
        connection.execute("SELECT 1")
    assert sqlite_cause(closed.value) == Cause.CONNECTION_LOST


def test_an_outage_named_without_a_cause_is_unreachable() -> None:
    """Unavailable alone means the database cannot be reached, and is worth a retry."""
    outage = Unavailable("ConnectionRefusedError")
    assert outage.cause == Cause.UNREACHABLE and outage.transient
    assert outage.public_detail == "database unavailable: unreachable"
