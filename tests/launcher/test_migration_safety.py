"""The safety analysis as the launcher runs it: before the child, warn or refuse, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import Launcher, launcher_env
from tests.support.revisions import HEAD, add_revision
from tests.support.state import applied_versions
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

DROP_EMAIL = 'op.drop_column("users", "email")'


def _run(args: list[str], url: DatabaseURL, root: Path, log: Path, **env: str) -> Launcher:
    launcher = Launcher(args, env=launcher_env(url, **env), root=root, log_path=log)
    launcher.wait(timeout=90)
    return launcher


def _at_head(url: DatabaseURL, root: Path, tmp_path: Path) -> None:
    assert _run(["migrate"], url, root, tmp_path / "setup").process.returncode == 0


def test_strict_refuses_a_destructive_revision_before_it_runs(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """--lint strict: a pending DROP COLUMN is named with its recipe, exit 5, nothing applied."""
    _at_head(postgres_url, project_copy, tmp_path)
    add_revision(project_copy, "0002", HEAD, DROP_EMAIL)
    launcher = _run(["migrate", "--lint", "strict"], postgres_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 5, launcher.output
    assert "0002 (20261127_0002_test.py): drop-column" in launcher.output
    assert "[migrate]" not in launcher.output
    assert applied_versions(postgres_url) == [HEAD]


def test_warn_reports_and_migrates(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """The default (warn): one line per finding, then the migration runs."""
    _at_head(postgres_url, project_copy, tmp_path)
    add_revision(project_copy, "0002", HEAD, DROP_EMAIL)
    launcher = _run(["migrate"], postgres_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 0, launcher.output
    assert launcher.output.count("unsafe migration: 0002") == 1
    assert applied_versions(postgres_url) == ["0002"]


def test_check_lint_reports_without_applying(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """`check --lint` lists the pending revision and its finding, exit 5, applies nothing."""
    _at_head(postgres_url, project_copy, tmp_path)
    add_revision(project_copy, "0002", HEAD, 'op.create_index("ix_name", "users", ["name"])')
    launcher = _run(["check", "--lint"], postgres_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 5, launcher.output
    assert "create-index-not-concurrently" in launcher.output
    assert applied_versions(postgres_url) == [HEAD]


def test_an_opt_out_with_a_reason_lets_strict_pass(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """A revision that silences the rule, with its reason, migrates under strict."""
    _at_head(postgres_url, project_copy, tmp_path)
    path = add_revision(project_copy, "0002", HEAD, DROP_EMAIL)
    path.write_text(
        "# migration-lint: ignore drop-column -- no release reads email any more\n"
        + path.read_text()
    )
    launcher = _run(["migrate", "--lint", "strict"], postgres_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 0, launcher.output
    assert applied_versions(postgres_url) == ["0002"]


def test_sqlite_skips_the_analysis_in_one_line(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """On SQLite the rules (PostgreSQL's) do not apply: one line says so, strict migrates."""
    launcher = _run(["migrate", "--lint", "strict"], sqlite_url, project_copy, tmp_path / "1")
    assert launcher.process.returncode == 0, launcher.output
    assert launcher.output.count("migration safety analysis skipped") == 1
    assert applied_versions(sqlite_url) == [HEAD]


def test_lint_can_be_set_from_the_environment(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """MIGRATION_LINT=strict is --lint strict."""
    _at_head(postgres_url, project_copy, tmp_path)
    add_revision(project_copy, "0002", HEAD, DROP_EMAIL)
    launcher = _run(
        ["migrate"], postgres_url, project_copy, tmp_path / "1", MIGRATION_LINT="strict"
    )
    assert launcher.process.returncode == 5
