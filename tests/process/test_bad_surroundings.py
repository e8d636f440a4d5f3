"""Broken surroundings: one clear line, the documented exit code, nothing applied."""

import socket
from pathlib import Path

import pytest

from tests.support.processes import Launcher, http_status, launcher_env
from tests.support.state import applied_versions
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow


def _run(args: list[str], url: DatabaseURL | None, root: Path, log: Path) -> Launcher:
    launcher = Launcher(args, env=launcher_env(url), root=root, log_path=log)
    launcher.wait(timeout=60)
    return launcher


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "ERROR" in line]


def test_malformed_alembic_ini_is_78(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """An alembic.ini that does not parse: exit 78 naming the file, nothing applied."""
    (project_copy / "alembic.ini").write_text("[alembic\nscript_location = x\n")
    launcher = _run(["migrate"], sqlite_url, project_copy, tmp_path / "out")
    assert launcher.process.returncode == 78
    (line,) = _error_lines(launcher.output)
    assert "cannot read the alembic config" in line
    assert applied_versions(sqlite_url) == []


def test_missing_migrations_folder_is_78(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """No migrations/ folder: exit 78 saying so, nothing applied."""
    import shutil

    shutil.rmtree(project_copy / "migrations")
    launcher = _run(["--port", "8123"], sqlite_url, project_copy, tmp_path / "out")
    assert launcher.process.returncode == 78
    (line,) = _error_lines(launcher.output)
    assert "migrations folder" in line and "is missing" in line
    assert applied_versions(sqlite_url) == []


def test_unresolvable_host_is_69(tmp_path: Path, project_copy: Path) -> None:
    """A host name that does not resolve is retried for --db-wait, then exit 69."""
    url = DatabaseURL("postgresql+asyncpg://postgres@db.does-not-exist.invalid:5432/app")
    launcher = _run(["migrate", "--db-wait", "2"], url, project_copy, tmp_path / "out")
    assert launcher.process.returncode == 69
    (line,) = _error_lines(launcher.output)
    assert "cannot resolve the host" in line and "db.does-not-exist.invalid" in line


def test_taken_port_is_75_before_anything_is_applied(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """A port another process listens on: exit 75 naming it, nothing migrated."""
    with socket.create_server(("127.0.0.1", port)):
        launcher = _run(["--port", str(port)], sqlite_url, project_copy, tmp_path / "out")
    assert launcher.process.returncode == 75
    (line,) = _error_lines(launcher.output)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "in use" in line
    assert applied_versions(sqlite_url) == []
    assert http_status(port) is None


def test_role_without_access_to_the_schema_is_78(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """A role that may connect but not read the schema: exit 78 naming the role, one line."""
    import uuid

    from tests.support import postgres

    assert _run(["migrate"], postgres_url, project_copy, tmp_path / "0").process.returncode == 0
    role = f"no_access_{uuid.uuid4().hex[:8]}"
    postgres.execute(postgres_url, f'CREATE ROLE "{role}" LOGIN')
    try:
        url = DatabaseURL(postgres_url.url.replace("://postgres@", f"://{role}@"))
        launcher = _run(["check"], url, project_copy, tmp_path / "1")
    finally:
        postgres.execute(postgres_url, f'DROP OWNED BY "{role}"', f'DROP ROLE "{role}"')
    assert launcher.process.returncode == 78
    (line,) = _error_lines(launcher.output)
    assert "cannot read test_app.alembic_version: permission denied" in line
    assert "Traceback" not in launcher.output
