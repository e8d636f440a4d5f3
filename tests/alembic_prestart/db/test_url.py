"""Database URLs recognised, checked and redacted (db/url.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic_prestart.db.url import (
    DatabaseURLError,
    parse_database_url,
    redact_url,
    redact_urls_in,
    validate_schema,
)
from alembic_prestart.observe import logs

ROOT = Path("/srv/app")


@pytest.mark.parametrize(
    "raw",
    [
        "postgres://u:p@h/db",
        "postgresql://u:p@h:5433/db?sslmode=require",
        "postgresql+asyncpg://u@h/db",
        "postgresql:///db?host=/var/run/postgresql",
        "postgresql://%2Fvar%2Frun%2Fpostgresql/db",
        "postgresql://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write",
        "postgresql://u@[::1]:5432/db",
        "postgresql://",
    ],
)
def test_postgres_urls_pass_through_unchanged(raw: str) -> None:
    """A PostgreSQL URL is recognised and kept exactly as given: asyncpg alone reads it."""
    url = parse_database_url(raw, root=ROOT)
    assert url.is_postgres and url.url == raw
    assert url.asyncpg_dsn().startswith("postgresql://")
    assert url.asyncpg_dsn().partition("://")[2] == raw.partition("://")[2]


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://u@%2Ftmp%2Fpg@15/db",  # a socket directory holding an @
        "postgresql://u:p@ignored@x/db?host=127.0.0.1&port=1",  # host= replaces the URL's host
    ],
)
def test_an_at_sign_libpq_reads_is_not_refused(raw: str) -> None:
    """Only an @ that would end up in a host name to resolve is refused."""
    assert parse_database_url(raw, root=ROOT).url == raw


def test_sqlite_paths_resolve_from_the_root_not_the_cwd() -> None:
    """sqlite:///var/x.db is under the project root; sqlite:////abs is absolute; empty is the
    project's default, resolved from the root too."""
    assert parse_database_url("sqlite:///var/x.db", root=ROOT).sqlite_path == ROOT / "var/x.db"
    assert parse_database_url("sqlite:////tmp/x.db", root=ROOT).sqlite_path == Path("/tmp/x.db")
    default = parse_database_url("", root=ROOT, default="sqlite:///var/app.db")
    assert default.sqlite_path == ROOT / "var/app.db"


def test_no_url_and_no_default_is_a_configuration_error() -> None:
    """Without a project default (the alembic-prestart command), an unset URL is refused, never
    a SQLite file nobody asked for."""
    with pytest.raises(DatabaseURLError, match="no database URL: set DATABASE_URL"):
        parse_database_url("", root=ROOT)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("mysql://u@h/db", "unsupported database URL scheme 'mysql'"),
        ("no-scheme-here", r"unsupported database URL scheme '\(none\)'"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite://host/x.db", "malformed SQLite URL"),
        ("postgres://app:s3c@retPW@db.example.com/app", "percent-encode an @ .* as %40"),
        ("postgresql://a@b@db.example.com:5432/app?sslmode=require", "a second @"),
    ],
)
def test_unusable_urls_are_one_line_errors(raw: str, message: str) -> None:
    """What no driver could read is refused with a line that holds no password."""
    with pytest.raises(DatabaseURLError, match=message) as error:
        parse_database_url(raw, root=ROOT)
    assert "retPW" not in str(error.value) and "s3c" not in str(error.value)


def test_schema_names_are_identifiers() -> None:
    """A schema is quoted into DDL: letters, digits and _ only."""
    assert validate_schema("test_app") == "test_app"
    for bad in ('x"; DROP', "PUBLIC", "pg_catalog"):
        with pytest.raises(DatabaseURLError):
            validate_schema(bad)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:head@db/app", "postgresql://app:***@db/app"),
        ("postgresql://app:p@ss:w@rd@db:5432/app", "postgresql://app:***@db:5432/app"),
        (
            "postgresql://app@db/app?password=x&sslmode=require",
            "postgresql://app@db/app?password=***&sslmode=require",
        ),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
        ("postgresql://a:b@h1,h2:5433/app", "postgresql://a:***@h1,h2:5433/app"),
        ("postgresql://u:SEC/RET7@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:a#b?c@h/db", "postgresql://u:***@h/db"),
    ],
)
def test_redaction_parses_the_url(url: str, shown: str) -> None:
    """The password is found by parsing: whole, even with @ or : in it."""
    assert redact_url(url) == shown


def test_redaction_leaves_text_that_merely_equals_the_password() -> None:
    """A password `head` does not turn `schema at head` into `schema at ***`."""
    line = "schema at head (0001); url postgresql://app:head@db/app"
    assert redact_urls_in(line) == "schema at head (0001); url postgresql://app:***@db/app"
    assert logs.redact("schema at head") == "schema at head"
