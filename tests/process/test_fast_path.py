"""The at-head fast path of `serve` never skips a pending revision."""

from pathlib import Path

import pytest

from tests.support.processes import Launcher, launcher_env
from tests.support.revisions import HEAD, add_revision
from tests.support.state import applied_versions
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

SKIPPED = "migration child skipped"


def _serve(url: DatabaseURL, root: Path, port: int, log: Path, *args: str) -> Launcher:
    return Launcher(["--port", str(port), *args], env=launcher_env(url), root=root, log_path=log)


def _migrate(url: DatabaseURL, root: Path, log: Path) -> None:
    launcher = Launcher(["migrate"], env=launcher_env(url), root=root, log_path=log)
    assert launcher.wait() == 0, launcher.output


def test_at_head_skips_the_child(
    database_url: DatabaseURL, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """At head, serve says so in one line and starts no alembic child."""
    _migrate(database_url, project_copy, tmp_path / "0")
    launcher = _serve(database_url, project_copy, port, tmp_path / "1")
    try:
        launcher.wait_http(port)
    finally:
        launcher.stop()
    assert SKIPPED in launcher.output
    assert "[migrate]" not in launcher.output


def test_always_migrate_forces_the_child(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """--always-migrate runs the alembic child even at head."""
    _migrate(sqlite_url, project_copy, tmp_path / "0")
    launcher = _serve(sqlite_url, project_copy, port, tmp_path / "1", "--always-migrate")
    try:
        launcher.wait_http(port)
    finally:
        launcher.stop()
    assert SKIPPED not in launcher.output
    assert "[migrate]" in launcher.output


def test_new_revision_files_are_applied(
    database_url: DatabaseURL, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """A database two revisions behind the code gets both."""
    _migrate(database_url, project_copy, tmp_path / "0")
    add_revision(project_copy, "0002", HEAD, 'op.add_column("users", sa.Column("a", sa.Text))')
    add_revision(project_copy, "0003", "0002", 'op.add_column("users", sa.Column("b", sa.Text))')
    launcher = _serve(database_url, project_copy, port, tmp_path / "1")
    try:
        launcher.wait_http(port)
    finally:
        launcher.stop()
    assert SKIPPED not in launcher.output
    assert f"Running upgrade {HEAD} -> 0002" in launcher.output
    assert "Running upgrade 0002 -> 0003" in launcher.output
    assert applied_versions(database_url) == ["0003"]


def test_several_heads_fail(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """Two revisions branching from the same parent: exit 3 naming multiple heads."""
    _migrate(sqlite_url, project_copy, tmp_path / "0")
    add_revision(project_copy, "0002a", HEAD, "pass")
    add_revision(project_copy, "0002b", HEAD, "pass")
    launcher = _serve(sqlite_url, project_copy, port, tmp_path / "1")
    assert launcher.wait() == 3
    assert "multiple heads" in launcher.output
    assert applied_versions(sqlite_url) == [HEAD]


def test_revision_file_it_cannot_read_goes_to_alembic(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """A computed revision id is beyond the static reader: the child runs and applies it."""
    _migrate(sqlite_url, project_copy, tmp_path / "0")
    path = add_revision(project_copy, "0002", HEAD, "pass")
    path.write_text(path.read_text().replace("revision = '0002'", "revision = '00' + '02'"))
    launcher = _serve(sqlite_url, project_copy, port, tmp_path / "1")
    try:
        launcher.wait_http(port)
    finally:
        launcher.stop()
    assert "static revision reader steps aside" in launcher.output
    assert applied_versions(sqlite_url) == ["0002"]


def test_revision_with_a_syntax_error_fails(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """A revision file with a syntax error: exit 3 naming the file and line; nothing applied."""
    _migrate(sqlite_url, project_copy, tmp_path / "0")
    path = add_revision(project_copy, "0002", HEAD, "pass")
    path.write_text(path.read_text() + "\ndef broken(:\n")
    launcher = _serve(sqlite_url, project_copy, port, tmp_path / "1")
    assert launcher.wait() == 3
    assert "20261127_0002_test.py, line" in launcher.output
    assert "SyntaxError" in launcher.output
    assert applied_versions(sqlite_url) == [HEAD]


def test_a_database_ahead_of_the_code_is_served_without_migrating(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path, project_copy: Path
) -> None:
    """A release restarting after a newer one migrated (or a code rollback): it says so and
    serves on the newer schema, as expand/contract intends, without running Alembic."""
    newer = add_revision(project_copy, "0002", HEAD, "pass")
    _migrate(sqlite_url, project_copy, tmp_path / "0")
    newer.unlink()  # this release is the older one: it does not know 0002
    launcher = _serve(sqlite_url, project_copy, port, tmp_path / "1")
    try:
        assert launcher.wait_http(port) == 200
    finally:
        launcher.stop()
    assert "which this release does not know" in launcher.output
    assert "[migrate]" not in launcher.output
    assert applied_versions(sqlite_url) == ["0002"]
