"""What a failed connect means (db/session.py)."""

from __future__ import annotations

from pathlib import Path

from alembic_prestart.db.url import (
    parse_database_url,
)

ROOT = Path("/srv/app")


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
