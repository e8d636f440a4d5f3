"""In-process tests of the launcher's pure parts: URL recognition and redaction, the diagnosis
of a failed child, the app check, progress lines and the lock's waiting policy."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from alembic_prestart.db.url import (
    DatabaseURLError,
    parse_database_url,
    redact_url,
    redact_urls_in,
    validate_schema,
)
from alembic_prestart.lock.core import LockTimeout, Waiting, advisory_lock_key
from alembic_prestart.observe import logs
from alembic_prestart.observe.progress import MigrationProgress
from alembic_prestart.process.app_check import app_problem
from alembic_prestart.process.diagnosis import diagnose

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
    ],
)
def test_unusable_urls_are_one_line_errors(raw: str, message: str) -> None:
    """What no driver could read is refused with a line that holds no password."""
    with pytest.raises(DatabaseURLError, match=message):
        parse_database_url(raw, root=ROOT)


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


@pytest.mark.parametrize(
    ("tail", "cause"),
    [
        (
            [
                "asyncpg.exceptions.ConnectionDoesNotExistError: connection was closed in the "
                "middle of operation"
            ],
            "connection was lost",
        ),
        (["canceling statement due to lock timeout"], "lock timeout"),
        (
            ['File "/p/migrations/versions/x_0002.py", line 17, in upgrade', "ValueError: boom"],
            "exception in revision migrations/versions/x_0002.py, line 17: ValueError: boom",
        ),
        (["FAILED: Multiple head revisions are present"], "multiple heads"),
        ([], "no output"),
    ],
)
def test_diagnosis_names_the_cause(tail: list[str], cause: str) -> None:
    """A failed child's output becomes one line naming its cause."""
    assert cause in diagnose(tail)


def test_app_check(tmp_path: Path) -> None:
    """module:attribute is found statically, or the problem is named; dynamic modules pass."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "web.py").write_text("from x import y as app\n")
    (tmp_path / "pkg" / "lazy.py").write_text("def __getattr__(name):\n    return name\n")
    assert app_problem("pkg.web:app", tmp_path) is None
    assert app_problem("pkg.lazy:anything", tmp_path) is None
    assert "defines no 'apq'" in (app_problem("pkg.web:apq", tmp_path) or "")
    assert "no module 'pkg.wbe'" in (app_problem("pkg.wbe:app", tmp_path) or "")
    assert "module:attribute" in (app_problem("pkg.web", tmp_path) or "")


def test_progress_lines(caplog: pytest.LogCaptureFixture) -> None:
    """A start line, `still running` every 5 s, and a duration, from Alembic's own lines."""
    now = [0.0]
    progress = MigrationProgress(["a1", "b2"], clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="alembic_prestart")
    logs.logger.propagate = True
    try:
        progress.observe("INFO  [alembic.runtime.migration] Running upgrade  -> a1, create users")
        now[0] = 5.2
        progress.tick()
        now[0] = 6.0
        progress.observe("INFO  [alembic.runtime.migration] Running upgrade a1 -> b2, add x")
        now[0] = 6.5
        progress.finish_revision()
    finally:
        logs.logger.propagate = False
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        'revision 1/2 a1 "create users" started',
        'still running revision 1/2 a1 "create users" (5 s)',
        'revision 1/2 a1 "create users" done in 6.0 s',
        'revision 2/2 b2 "add x" started',
        'revision 2/2 b2 "add x" done in 0.5 s',
    ]


def test_waiting_gives_up_at_its_deadline() -> None:
    """The lock's policy never sleeps past the deadline and then raises LockTimeout."""
    waiting = Waiting("schema s", timeout=0.0)
    with pytest.raises(LockTimeout, match="held by pid 7"):
        waiting.pause(lambda: "pid 7")
    assert Waiting("schema s", timeout=60).pause(lambda: "pid 7") <= 0.1


def test_lock_keys_are_stable_per_database_and_schema() -> None:
    """The same database and schema give the same 63-bit key, in every process."""
    key = advisory_lock_key("app", "test_app")
    assert key == advisory_lock_key("app", "test_app")
    assert 0 <= key < 2**63
    assert key != advisory_lock_key("app", "public")


def test_what_waiting_cannot_fix_is_a_configuration_error() -> None:
    """A port out of range or a missing certificate file: exit 78 at once, never retried."""
    from alembic_prestart.db.session import RetryableError, classify_connect_error
    from alembic_prestart.errors import EXIT_CONFIG, SupervisorError

    url = parse_database_url("postgresql://u@h/db?sslrootcert=/nonexistent", root=ROOT)
    for error in (
        OverflowError("connect(): port must be 0-65535."),
        FileNotFoundError(2, "No such file or directory", "/nonexistent"),
    ):
        verdict = classify_connect_error(error, url)
        assert isinstance(verdict, SupervisorError) and verdict.exit_code == EXIT_CONFIG
    assert isinstance(classify_connect_error(ConnectionRefusedError(), url), RetryableError)
